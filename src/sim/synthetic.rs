//! Synthetic notices whose whole content is a function of their id, so that a process
//! that appended them and a process that checks them afterwards agree without sharing
//! anything but the id (the crash tests rely on this).

use crate::ids::{NoticeId, UserId};
use crate::notice::NewNotice;

/// Body length of a synthetic notice: a full tweet of the 280-character era.
pub const SYNTHETIC_BODY_BYTES: usize = 280;

const WORDS: [&str; 16] = [
    "notice",
    "timeline",
    "federated",
    "status",
    "repeat",
    "reply",
    "mention",
    "group",
    "public",
    "social",
    "stream",
    "inbox",
    "follow",
    "subscribe",
    "server",
    "feed",
];

fn mix(mut x: u64) -> u64 {
    // splitmix64: a fixed, well-spread function of its input.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The synthetic notice that is appended as `id`: author, body of
/// [`SYNTHETIC_BODY_BYTES`] bytes, creation time, a tag and a mention all follow from
/// the id.
pub fn synthetic_notice(id: NoticeId) -> NewNotice {
    let h = mix(id.0);
    let mut body = format!("#{} n{} ", id.0, h % 1000);
    let mut state = h;
    while body.len() < SYNTHETIC_BODY_BYTES {
        state = mix(state);
        body.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        body.push(' ');
    }
    body.truncate(SYNTHETIC_BODY_BYTES);
    NewNotice {
        author: UserId((h % 100_000) as u32),
        body,
        created_at_ms: 1_700_000_000_000 + id.0 * 1000,
        mentions: vec![UserId(((h >> 20) % 100_000) as u32)],
        tags: vec![WORDS[((h >> 40) % WORDS.len() as u64) as usize].to_string()],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_a_function_of_the_id() {
        assert_eq!(synthetic_notice(NoticeId(7)), synthetic_notice(NoticeId(7)));
        assert_ne!(
            synthetic_notice(NoticeId(7)).body,
            synthetic_notice(NoticeId(8)).body
        );
        assert_eq!(
            synthetic_notice(NoticeId(9)).body.len(),
            SYNTHETIC_BODY_BYTES
        );
    }
}
