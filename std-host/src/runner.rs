//! Many streams over one model: each stream owns its state; scratch is shared.

use tinyssm_core::{Input, Model};

use crate::error::HostError;

/// Handle of a stream in a [`Runner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub usize);

/// Runs any number of independent streams through one model, one step at a time.
#[derive(Debug)]
pub struct Runner<'m> {
    model: Model<'m>,
    states: Vec<Option<Vec<f32>>>,
    scratch: Vec<f32>,
    /// The model's audio front end, resolved once (models that take raw samples).
    fe: Option<tinyssm_core::frontend::FrontEnd<'m>>,
}

impl<'m> Runner<'m> {
    pub fn new(model: Model<'m>) -> Self {
        Runner {
            model,
            states: Vec::new(),
            scratch: vec![0.0; model.scratch_len()],
            fe: model.front_end(),
        }
    }

    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Opens a stream in the initial state.
    pub fn open(&mut self) -> StreamId {
        let mut st = vec![0.0; self.model.state_len()];
        // Cannot fail: the buffer has exactly state_len elements.
        let _ = self.model.reset(&mut st);
        if let Some(i) = self.states.iter().position(Option::is_none) {
            self.states[i] = Some(st);
            StreamId(i)
        } else {
            self.states.push(Some(st));
            StreamId(self.states.len() - 1)
        }
    }

    /// Closes a stream, freeing its state.
    pub fn close(&mut self, id: StreamId) -> Result<(), HostError> {
        self.states
            .get_mut(id.0)
            .and_then(Option::take)
            .map(|_| ())
            .ok_or(HostError::UnknownStream(id.0))
    }

    /// Number of open streams.
    pub fn len(&self) -> usize {
        self.states.iter().filter(|s| s.is_some()).count()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stream's state (for inspection and tests).
    pub fn state(&self, id: StreamId) -> Result<&[f32], HostError> {
        self.states
            .get(id.0)
            .and_then(Option::as_deref)
            .ok_or(HostError::UnknownStream(id.0))
    }

    /// A snapshot of the stream ([`tinyssm_core::snapshot`]): its whole state as bytes,
    /// tied to this model.
    pub fn snapshot(&self, id: StreamId) -> Result<Vec<u8>, HostError> {
        let st = self.state(id)?;
        let mut out = vec![0u8; self.model.snapshot_len()];
        self.model
            .snapshot(st, &mut out)
            .map_err(|source| HostError::Snapshot {
                path: "<stream>".into(),
                source,
            })?;
        Ok(out)
    }

    /// Sets the stream's state from a snapshot of this model (`path` names it in errors);
    /// on any error the stream is unchanged.
    pub fn restore(
        &mut self,
        id: StreamId,
        snapshot: &[u8],
        path: &std::path::Path,
    ) -> Result<(), HostError> {
        let st = self
            .states
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(HostError::UnknownStream(id.0))?;
        self.model
            .restore(snapshot, st)
            .map_err(|source| HostError::Snapshot {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Resets a stream to the initial state.
    pub fn reset(&mut self, id: StreamId) -> Result<(), HostError> {
        let st = self
            .states
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(HostError::UnknownStream(id.0))?;
        self.model.reset(st)?;
        Ok(())
    }

    /// One step of one stream; `out` must hold `d_output` values.
    pub fn step(
        &mut self,
        id: StreamId,
        input: Input<'_>,
        out: &mut [f32],
    ) -> Result<(), HostError> {
        let st = self
            .states
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(HostError::UnknownStream(id.0))?;
        self.model.step(input, st, &mut self.scratch, out)?;
        Ok(())
    }

    /// One audio sample through the front end; `Ok(true)` when a frame completed and `out`
    /// holds the model's outputs for it.
    pub fn step_sample(
        &mut self,
        id: StreamId,
        x: f32,
        out: &mut [f32],
    ) -> Result<bool, HostError> {
        let st = self
            .states
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(HostError::UnknownStream(id.0))?;
        let fe = self
            .fe
            .as_ref()
            .ok_or(tinyssm_core::StepError::WrongInputKind)?;
        Ok(self.model.step_sample(fe, x, st, &mut self.scratch, out)?)
    }

    /// Feeds a chunk of tokens to a stream; returns `[tokens.len(), d_output]` outputs.
    pub fn feed_tokens(&mut self, id: StreamId, tokens: &[u32]) -> Result<Vec<f32>, HostError> {
        let d = self.model.d_output();
        let mut out = vec![f32::NAN; tokens.len() * d];
        for (i, (t, o)) in tokens
            .iter()
            .zip(out.chunks_exact_mut(d.max(1)))
            .enumerate()
        {
            self.step(id, Input::Token(*t), o)
                .map_err(|e| at("step", i, e))?;
        }
        Ok(out)
    }

    /// Feeds a chunk of input vectors (row-major, `d_input` per step) to a stream.
    /// Feeds audio samples to a model with a front end; returns the outputs of every
    /// completed frame, `[frames, d_output]` row-major.
    pub fn feed_samples(&mut self, id: StreamId, xs: &[f32]) -> Result<Vec<f32>, HostError> {
        let d = self.model.d_output();
        let mut out = Vec::new();
        let mut o = vec![0f32; d];
        for (i, &x) in xs.iter().enumerate() {
            if self
                .step_sample(id, x, &mut o)
                .map_err(|e| at("sample", i, e))?
            {
                out.extend_from_slice(&o);
            }
        }
        Ok(out)
    }

    pub fn feed_vectors(&mut self, id: StreamId, xs: &[f32]) -> Result<Vec<f32>, HostError> {
        let di = self.model.d_input().max(1);
        let d = self.model.d_output();
        if !xs.len().is_multiple_of(di) {
            return Err(HostError::Step(tinyssm_core::StepError::InputLength {
                expected: di,
                got: xs.len() % di,
            }));
        }
        let steps = xs.len() / di;
        let mut out = vec![f32::NAN; steps * d];
        for (i, (x, o)) in xs
            .chunks_exact(di)
            .zip(out.chunks_exact_mut(d.max(1)))
            .enumerate()
        {
            self.step(id, Input::Vector(x), o)
                .map_err(|e| at("step", i, e))?;
        }
        Ok(out)
    }
}

/// A step error of a fed chunk, with where in the chunk it happened (0-based).
fn at(what: &str, i: usize, e: HostError) -> HostError {
    match e {
        HostError::Step(source) => HostError::StepAt {
            at: format!("{what} {i}"),
            source,
        },
        e => e,
    }
}
