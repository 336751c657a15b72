//! `#[repr(C)]` mirrors of the kernel parameter structs in `kernels/prelude.cuh`, field for
//! field (device addresses as `u64`, explicit padding so no byte is uninitialised). The
//! emulator test compares every size with the C++ compiler's.

/// A kernel parameter struct: plain old data, passed by value to the kernel.
///
/// # Safety
/// Implementors are `#[repr(C)]`, contain only integers and floats, and have no padding
/// bytes (so they can be viewed as bytes).
pub unsafe trait KernelParams: Copy + 'static {
    /// The struct's name in prelude.cuh.
    const NAME: &'static str;
    fn bytes(&self) -> &[u8] {
        // SAFETY: the trait's contract (no padding, plain data).
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }
}

macro_rules! params {
    ($(#[$m:meta])* $name:ident { $($f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name { $(pub $f: $t),* }
        // SAFETY: repr(C), integer/float fields laid out without padding (checked by the
        // static assertion below: the size is the sum of the field sizes).
        unsafe impl KernelParams for $name {
            const NAME: &'static str = stringify!($name);
        }
        const _: () = assert!(size_of::<$name>() == 0 $(+ size_of::<$t>())*);
    };
}

params!(MapParams {
    x: u64,
    dy: u64,
    y: u64,
    n: i64,
    s: f32,
    pad: i32
});
params!(GluParams {
    x: u64,
    dy: u64,
    y: u64,
    rows: i64,
    d: i64,
    x_rs: i64,
    y_rs: i64
});
params!(AdamParams {
    p: u64,
    g: u64,
    m: u64,
    v: u64,
    n: i64,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    wd: f32,
    bc1: f32,
    bc2: f32,
    decay: i32,
});
params!(ColParams {
    x: u64,
    b: u64,
    y: u64,
    partial: u64,
    rows: i64,
    cols: i64,
    rs: i64,
    rpb: i64,
    nblk: i64
});
params!(ReduceParams {
    x: u64,
    partial: u64,
    n: i64,
    mode: i32,
    pad: i32
});
params!(GatherParams {
    x: u64,
    y: u64,
    idx: u64,
    n: i64,
    d: i64,
    x_rows: i64
});
params!(NormParams {
    x: u64,
    g: u64,
    b: u64,
    dy: u64,
    y: u64,
    stats: u64,
    dx: u64,
    partial: u64,
    rows: i64,
    d: i64,
    rs: i64,
    rpb: i64,
    eps: f32,
    pad: i32,
});
params!(ConvParams {
    x: u64,
    w: u64,
    bias: u64,
    dy: u64,
    y: u64,
    dx: u64,
    partial: u64,
    batch: i64,
    time: i64,
    ch: i64,
    k: i64,
    sb: i64,
    st: i64,
    rpb: i64,
});
params!(LossParams {
    logits: u64,
    labels: u64,
    targets: u64,
    dlogits: u64,
    loss: u64,
    correct: u64,
    n: i64,
    classes: i64,
    inv_n: f32,
    pos_weight: f32,
});
params!(S4dParams {
    u: u64,
    da: u64,
    cb: u64,
    dskip: u64,
    dy: u64,
    y: u64,
    states: u64,
    du: u64,
    g_da: u64,
    g_cb: u64,
    g_d: u64,
    batch: i64,
    time: i64,
    h: i64,
    n2: i64,
    sb: i64,
    st: i64,
    ssb: i64,
    sst: i64,
});
params!(SelScanParams {
    u: u64,
    dt: u64,
    bias: u64,
    a: u64,
    bm: u64,
    cm: u64,
    dskip: u64,
    z: u64,
    dy: u64,
    steps: u64,
    y: u64,
    saved: u64,
    out: u64,
    du: u64,
    ddt: u64,
    dbm: u64,
    dcm: u64,
    dz: u64,
    da: u64,
    gskip: u64,
    gbias: u64,
    batch: i64,
    time: i64,
    d: i64,
    n: i64,
    xb: i64,
    xt: i64,
    bb: i64,
    bt: i64,
    chunk: i64,
    nchunks: i64,
});
params!(SsdParams {
    x: u64,
    dt: u64,
    bias: u64,
    a: u64,
    bm: u64,
    cm: u64,
    dskip: u64,
    dy: u64,
    steps: u64,
    y: u64,
    saved: u64,
    out: u64,
    dx: u64,
    ddt: u64,
    dbm: u64,
    dcm: u64,
    da: u64,
    gskip: u64,
    gbias: u64,
    batch: i64,
    time: i64,
    heads: i64,
    p: i64,
    groups: i64,
    n: i64,
    xb: i64,
    xt: i64,
    tb: i64,
    tt: i64,
    bb: i64,
    bt: i64,
    chunk: i64,
    nchunks: i64,
    dt_min: f32,
    dt_max: f32,
});
params!(MmaTestParams {
    a: u64,
    b: u64,
    c: u64,
    m: i64,
    n: i64,
    k: i64,
    mode: i32,
    pad: i32,
});

/// `(name, size)` of every params struct, for the layout check against the C++ side.
pub fn sizes() -> Vec<(&'static str, usize)> {
    fn e<P: KernelParams>() -> (&'static str, usize) {
        (P::NAME, size_of::<P>())
    }
    vec![
        e::<MapParams>(),
        e::<GluParams>(),
        e::<AdamParams>(),
        e::<ColParams>(),
        e::<ReduceParams>(),
        e::<GatherParams>(),
        e::<NormParams>(),
        e::<ConvParams>(),
        e::<LossParams>(),
        e::<S4dParams>(),
        e::<SelScanParams>(),
        e::<SsdParams>(),
        e::<MmaTestParams>(),
    ]
}
