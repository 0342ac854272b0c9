//! The progress bars of the long commands (`load`, `bench-log`, `sim`), one look.

use std::borrow::Cow;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`, the label right-aligned in `label_width`
/// columns and the bar `bar_width` wide.
pub(crate) fn bar(
    len: u64,
    what: impl Into<Cow<'static, str>>,
    label_width: usize,
    bar_width: usize,
) -> ProgressBar {
    ProgressBar::new(len).with_message(what).with_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>{label_width}}} [{{bar:{bar_width}}}] {{human_pos}}/{{human_len}} {{per_sec}} eta {{eta}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    )
}
