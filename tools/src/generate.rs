//! Text generation for byte-level language models (`tinyssm generate`).

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tinyssm_core::Model;
use tinyssm_host::Runner;

use crate::error::ToolError;

/// Feeds `prompt`, then produces `n` tokens: greedy (argmax) when `temperature` is 0,
/// otherwise sampled from softmax(logits / temperature) with a seeded generator.
pub fn generate(
    model: Model<'_>,
    prompt: &[u32],
    n: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u32>, ToolError> {
    let vocab = model.vocab_size().ok_or_else(|| {
        ToolError::Usage("generate needs a token model (this one takes vectors)".into())
    })?;
    if prompt.is_empty() {
        return Err(ToolError::Usage("the prompt is empty".into()));
    }
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(ToolError::Usage(format!(
            "temperature must be finite and >= 0, got {temperature}"
        )));
    }
    if let Some(&t) = prompt.iter().find(|&&t| t >= vocab) {
        return Err(ToolError::Usage(format!(
            "prompt token {t} is out of range for vocabulary {vocab}"
        )));
    }
    let mut runner = Runner::new(model);
    let id = runner.open();
    let d = model.d_output();
    let mut logits = runner
        .feed_tokens(id, prompt)?
        .split_off((prompt.len() - 1) * d);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let next = if temperature == 0.0 {
            argmax(&logits)
        } else {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let w: Vec<f64> = logits
                .iter()
                .map(|&l| (((l - max) / temperature) as f64).exp())
                .collect();
            let dist = WeightedIndex::new(&w)
                .map_err(|e| ToolError::Usage(format!("cannot sample from the logits: {e}")))?;
            dist.sample(&mut rng) as u32
        };
        out.push(next);
        logits = runner.feed_tokens(id, &[next])?;
    }
    Ok(out)
}

/// Index of the largest value (the first one on ties).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}
