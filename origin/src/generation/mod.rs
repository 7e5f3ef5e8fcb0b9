//! Turning queued generations into results: the provider interface, the
//! built-in SVG provider, and the background worker that drives them.

mod svg;
mod worker;

use std::future::Future;
use std::pin::Pin;

pub use svg::SvgSketchProvider;
pub use worker::{spawn_workers, WorkerHandle};

/// What a provider produced for one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artefact {
    /// Media type, such as `image/svg+xml`.
    pub media_type: String,
    pub content: String,
}

/// A model backend that turns a prompt into an artefact.
///
/// An error is a failure of this one generation (shown to the user as its
/// `error`), not of the worker.
pub trait GenerationProvider: Send + Sync + 'static {
    /// Whether this provider serves the model with this catalogue id.
    fn supports(&self, model: &str) -> bool;

    /// Produces the artefact for `prompt` with `model`.
    fn generate<'a>(
        &'a self,
        model: &'a str,
        prompt: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Artefact, String>> + Send + 'a>>;
}
