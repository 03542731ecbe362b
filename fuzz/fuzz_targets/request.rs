//! Raw bytes through roster's whole request path, as UDP and as TCP; the same property as
//! `tests/hostile.rs` (see `check_reply`), run by libFuzzer for as long as it is given.
#![no_main]

#[path = "../../tests/common/answer_world.rs"]
mod answer_world;

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use roster::dns::Handler;
use roster::metrics::Transport;

static HANDLER: LazyLock<Handler> = LazyLock::new(answer_world::handler);
static WITH_NSID: LazyLock<Handler> = LazyLock::new(answer_world::handler_with_nsid);

fuzz_target!(|bytes: &[u8]| {
    // The first byte picks the transport, so that one corpus covers both size limits, and
    // whether `dns.nsid` is set.
    let Some((&pick, message)) = bytes.split_first() else {
        return;
    };
    let transport = if pick & 1 == 0 {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    let handler = if pick & 2 == 0 { &HANDLER } else { &WITH_NSID };
    if let Err(problem) = answer_world::check_reply(handler, message, transport) {
        panic!("{problem}");
    }
});
