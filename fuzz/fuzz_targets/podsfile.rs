//! Versions of a pods file, read in turn as roster's file source reads them, must give what
//! parsing each whole gives: the same pods, or an error. The first version is also read as at
//! start-up (delivered pod by pod while it is read); the later ones are walked and compared in
//! order with the last version that parsed, so a version that does not parse must change nothing.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use roster::source::file::{self, ParseError, Version, Versions};
use roster::source::selection::Selection;
use roster::source::{PodEvent, PodKey, PodView};

type State = BTreeMap<PodKey, PodView>;

/// What a whole list means: every pod, the later item winning where two name one pod.
fn state_of(pods: &[PodView]) -> State {
    pods.iter().map(|p| (p.key(), p.clone())).collect()
}

/// Requires what a read of `text` gave (`how`) to be what reading it whole gave: the same pods,
/// or an error where that errs.
fn agree<E>(
    how: &str,
    got: Result<&State, E>,
    whole: Option<&Result<Vec<PodView>, ParseError>>,
    text: &[u8],
) {
    match (got, whole) {
        (Ok(state), Some(Ok(pods))) => assert!(
            *state == state_of(pods),
            "{how} and whole differ: {:?}",
            String::from_utf8_lossy(text)
        ),
        (Err(_), None | Some(Err(_))) => {}
        (got, whole) => panic!(
            "{how} read: {}, whole read: {:?}: {:?}",
            got.is_ok(),
            whole.map(Result::is_ok),
            String::from_utf8_lossy(text)
        ),
    }
}

/// The file's first version as roster reads it at start-up (`file::load`): delivered pod by pod
/// while it is read, from the start again (`Init`) where the walk gives up on it.
fn first_read(text: &[u8]) -> Result<State, file::FileError> {
    let path = std::env::temp_dir().join(format!("roster-fuzz-{}.json", std::process::id()));
    std::fs::write(&path, text).expect("a temporary file");
    let mut delivered = State::new();
    file::load(&path, &Selection::default(), |event| match event {
        PodEvent::Init(_) => delivered.clear(),
        PodEvent::InitApply(_, pod) => {
            delivered.insert(pod.key(), pod);
        }
        other => panic!("a first read delivered {other:?}"),
    })?;
    Ok(delivered)
}

fuzz_target!(|bytes: &[u8]| {
    // The first byte sets how much is read at a time (1 to 256 bytes, so that every boundary
    // falls everywhere); the versions are separated by a NUL, which no JSON text holds.
    let Some((&chunk, rest)) = bytes.split_first() else {
        return;
    };
    let mut versions = Versions::new(usize::from(chunk) + 1);
    let mut state = State::new();
    for (n, text) in rest.split(|&b| b == 0).take(3).enumerate() {
        let whole = std::str::from_utf8(text).ok().map(file::parse);
        if n == 0 {
            let first = first_read(text);
            if text.is_empty() {
                // Refused at start-up, as the watcher refuses it on reload: a file being written.
                assert!(matches!(first, Err(file::FileError::Empty { .. })));
            } else {
                agree("first", first.as_ref(), whole.as_ref(), text);
            }
        }
        let walked = match versions.read(text) {
            Ok(Version::Whole(all)) => Ok(state_of(&all)),
            Ok(Version::Changes { delete, apply }) => {
                for key in delete {
                    state.remove(&key);
                }
                for pod in apply {
                    state.insert(pod.key(), pod);
                }
                Ok(std::mem::take(&mut state))
            }
            Err(e) => Err(e),
        };
        agree("walked", walked.as_ref(), whole.as_ref(), text);
        if let Ok(walked) = walked {
            state = walked;
        }
    }
});
