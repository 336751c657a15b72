//! tinyssm-tools
