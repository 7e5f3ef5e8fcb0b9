//! The built-in provider: renders a small deterministic SVG from the prompt.
//!
//! It needs no network and no model weights, so the whole workflow runs on a
//! laptop and in CI. The same prompt and model always give the same picture,
//! because every shape is derived from a SHA-256 of the two.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Artefact, GenerationProvider};

const SKETCH: &str = "velro-svg-sketch";
const MOSAIC: &str = "velro-svg-mosaic";
const SIZE: u32 = 256;

/// Deterministic SVG renderer behind the `velro-svg-sketch` and `velro-svg-mosaic` models.
pub struct SvgSketchProvider {
    /// Time a render takes, standing in for model latency.
    render_time: Duration,
}

impl SvgSketchProvider {
    /// Creates the provider; `render_time` is slept before each result.
    pub fn new(render_time: Duration) -> Self {
        Self { render_time }
    }
}

impl GenerationProvider for SvgSketchProvider {
    fn supports(&self, model: &str) -> bool {
        model == SKETCH || model == MOSAIC
    }

    fn generate<'a>(
        &'a self,
        model: &'a str,
        prompt: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Artefact, String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::sleep(self.render_time).await;
            let content = match model {
                SKETCH => render_sketch(prompt),
                MOSAIC => render_mosaic(prompt),
                other => return Err(format!("model {other} is not served by the SVG provider")),
            };
            Ok(Artefact {
                media_type: "image/svg+xml".to_string(),
                content,
            })
        })
    }
}

/// A stream of bytes derived from the prompt, re-hashed as it runs out.
struct Seed {
    digest: [u8; 32],
    position: usize,
}

impl Seed {
    fn new(model: &str, prompt: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(model)
            .chain_update([0])
            .chain_update(prompt)
            .finalize();
        Self {
            digest: digest.into(),
            position: 0,
        }
    }

    fn next(&mut self) -> u32 {
        if self.position == self.digest.len() {
            self.digest = Sha256::digest(self.digest).into();
            self.position = 0;
        }
        let byte = self.digest[self.position];
        self.position += 1;
        u32::from(byte)
    }

    fn below(&mut self, bound: u32) -> u32 {
        (self.next() << 8 | self.next()) % bound
    }
}

fn header(prompt: &str, background: u32) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE}\" height=\"{SIZE}\" viewBox=\"0 0 {SIZE} {SIZE}\">\
         <title>{}</title><rect width=\"{SIZE}\" height=\"{SIZE}\" fill=\"hsl({background},30%,94%)\"/>",
        escape_xml(prompt)
    )
}

fn render_sketch(prompt: &str) -> String {
    let mut seed = Seed::new(SKETCH, prompt);
    let hue = seed.below(360);
    let mut svg = header(prompt, hue);
    for _ in 0..12 {
        let (x, y, r) = (seed.below(SIZE), seed.below(SIZE), 8 + seed.below(48));
        let shade = (hue + seed.below(90)) % 360;
        let _ = write!(svg, "<circle cx=\"{x}\" cy=\"{y}\" r=\"{r}\" fill=\"hsl({shade},60%,55%)\" fill-opacity=\"0.6\"/>");
    }
    for _ in 0..6 {
        let (x1, y1, x2, y2) = (
            seed.below(SIZE),
            seed.below(SIZE),
            seed.below(SIZE),
            seed.below(SIZE),
        );
        let _ = write!(svg, "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"hsl({hue},40%,25%)\" stroke-width=\"2\"/>");
    }
    svg.push_str("</svg>");
    svg
}

fn render_mosaic(prompt: &str) -> String {
    let mut seed = Seed::new(MOSAIC, prompt);
    let hue = seed.below(360);
    let mut svg = header(prompt, hue);
    let tile = SIZE / 8;
    for row in 0..8 {
        for column in 0..8 {
            let shade = (hue + seed.below(120)) % 360;
            let lightness = 35 + seed.below(40);
            let _ = write!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"{tile}\" height=\"{tile}\" fill=\"hsl({shade},55%,{lightness}%)\"/>",
                column * tile,
                row * tile
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            // XML 1.0 forbids most control characters, even escaped.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_prompt_renders_same_svg() {
        let provider = SvgSketchProvider::new(Duration::ZERO);
        let first = provider.generate(SKETCH, "a red fox").await.unwrap();
        let second = provider.generate(SKETCH, "a red fox").await.unwrap();
        let other = provider.generate(SKETCH, "a blue fox").await.unwrap();
        assert_eq!(first, second);
        assert_ne!(first.content, other.content);
        assert_eq!(first.media_type, "image/svg+xml");
        assert!(first.content.starts_with("<svg"));
        assert!(first.content.ends_with("</svg>"));
    }

    #[tokio::test]
    async fn prompt_markup_is_escaped() {
        let provider = SvgSketchProvider::new(Duration::ZERO);
        let artefact = provider
            .generate(MOSAIC, "<script>alert('x')</script> & \u{1}")
            .await
            .unwrap();
        assert!(!artefact.content.contains("<script>"));
        assert!(artefact
            .content
            .contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp;  </title>"));
    }

    #[tokio::test]
    async fn unknown_model_is_an_error() {
        let provider = SvgSketchProvider::new(Duration::ZERO);
        assert!(!provider.supports("gpt-image"));
        assert!(provider.generate("gpt-image", "x").await.is_err());
    }
}
