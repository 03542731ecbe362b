//! Watching the pods file: directory events and a 100 ms poll decide when a version is read,
//! a version caught mid-write is read again, and each new version that parses goes to the
//! pipeline; one that does not is logged and skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{FileError, First, Index, Selecting, Stamp, Version, read, stamp, version};
use crate::metrics::Metrics;
use crate::source::dirwatch::{DirWatch, Seen};
use crate::source::selection::Selection;
use crate::source::{PodEvent, PodView, ReadAgain, Received, Scope};

const POLL: Duration = Duration::from_millis(100);

/// The largest file read on the pipeline's own thread rather than handed to a blocking one (about
/// 40,000 pods as JSON or YAML, read in a few milliseconds; YAML parsed whole takes about a
/// second, which holds up nothing: the pipeline has nothing else to do meanwhile). Measured under
/// half the maximum DNS load on a shared core (p50 of the time to the new answer), the hand-over
/// cost more than it spared up to 10 MB (2,000 pods 1.6 -> 1.3 ms, 10,000 pods 2.3 -> 1.6 ms,
/// 25,000 pods 4.1 -> 3.3 ms), and less from 20 MB (50,000 pods 6.2 -> 6.9 ms, 100,000 pods
/// 12.5 -> 14.2 ms).
const READ_HERE: u64 = 16 << 20;

/// A new version, read and compared with the last one applied.
struct Reread {
    stamp: Option<Stamp>,
    fingerprint: u64,
    pods: usize,
    version: Version,
    /// A newer version landed while this one was read.
    newer: bool,
}

/// What came of reading a new version.
enum Outcome {
    Read(Reread),
    /// The file changed while it was read, according to its stamp or to the directory's events
    /// from the start of the read to its end (what they said, `Nothing` when only the stamp
    /// told): read again.
    Raced(Seen),
    Failed(FileError),
}

/// Reads a new version and makes `index` describe it; `index` is unchanged unless the version is
/// read and used. `since` gives the directory's events since it was last asked. When the file
/// has only ever been replaced by renames (`replaced_only`), whatever was read is one complete
/// version, even if a newer one landed meanwhile: it is used, so that a writer replacing the file
/// faster than it can be read still gets every version it leaves in place long enough.
fn reread(
    path: &Path,
    expected: Option<Stamp>,
    index: &mut Option<Index>,
    replaced_only: bool,
    since: impl Fn() -> Seen,
) -> Outcome {
    // Events queued since the watcher last looked: a write begun since then is not read.
    match since() {
        Seen::Writing => return Outcome::Raced(Seen::Writing),
        Seen::Nothing | Seen::Finished | Seen::Lost => {}
    }
    let loaded = read(path, index.as_ref());
    let seen = since();
    let newer = match &loaded {
        Ok(loaded) => seen != Seen::Nothing || loaded.stamp != expected,
        Err(_) => seen != Seen::Nothing,
    };
    let loaded = match loaded {
        Ok(loaded) if replaced_only && seen != Seen::Writing => loaded,
        _ if seen != Seen::Nothing => return Outcome::Raced(seen),
        // Changed, and no event has said how yet: look again at the next event or poll.
        Ok(loaded) if loaded.stamp != expected => return Outcome::Raced(Seen::Nothing),
        Ok(loaded) => loaded,
        Err(e) => return Outcome::Failed(e),
    };
    let pods = loaded.content.pods();
    let version = match version(index, loaded.content, || {
        read(path, None).map(|whole| whole.content)
    }) {
        Ok(version) => version,
        Err(e) => return Outcome::Failed(e),
    };
    Outcome::Read(Reread {
        stamp: loaded.stamp,
        fingerprint: loaded.fingerprint,
        pods,
        version,
        newer,
    })
}

/// What [`watch`] watches.
pub struct Watch {
    pub path: PathBuf,
    /// `source.namespaces` and `source.label_selector`.
    pub selection: Selection,
    /// Each change reads the file at once, even when nothing says it changed (SIGHUP: a network
    /// filesystem may show a changed file with its old size and times for a while).
    pub reread: ReadAgain,
}

/// Watches the file from its `first` version (already delivered, see
/// [`load_into`](super::load_into)) until `shutdown`, sending every new version that parses.
/// Versions that do not parse are logged and skipped; the zone keeps the last good version.
pub async fn watch(
    watch: Watch,
    first: First,
    events: mpsc::Sender<Received>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let Watch {
        path,
        selection,
        reread: mut asked,
    } = watch;
    let health = metrics.health();
    let mut applied = (first.stamp, first.fingerprint);
    health.synced();
    metrics.reloaded();
    let mut index = first.index;
    let mut dir_watch = watch_dir(&path).map(Arc::new);
    // When the change about to be read reached roster: the event that the file was replaced, or
    // the poll that first saw its latest stamp. roster_programming_latency_seconds counts from
    // then, so it includes the settling poll and the read, not only the apply.
    let mut noticed: Option<Instant> = None;
    // The stamp seen at the previous poll: a version is read once two polls agree on it, or at
    // once when the directory reports that the file was replaced.
    let mut seen = applied.0;
    let mut failing = false;
    // What the directory's events last said about the file: read at once when it was replaced
    // (`again`), never while it is being written (`writing`), else when polls agree.
    let (mut again, mut writing) = (false, false);
    // Asked to read the file whatever its stamp says, once no write is in progress.
    let mut forced = false;
    // A steady cadence, however many events arrive in between.
    let mut polls = tokio::time::interval(POLL);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let replaced = if std::mem::take(&mut again) {
            true
        } else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                Ok(()) = asked.changed() => {
                    forced = true;
                    noticed.get_or_insert_with(Instant::now);
                    true
                }
                _ = polls.tick() => false,
                result = next_event(dir_watch.as_deref()) => {
                    let event = result.unwrap_or_else(|e| {
                        warn!(error = %e, path = %path.display(), "cannot read directory events; polling only");
                        dir_watch = None;
                        Seen::Lost
                    });
                    writing = event == Seen::Writing;
                    if event != Seen::Finished || written_in_place(dir_watch.as_deref()) {
                        // Written in place, or not about the file: the polls decide.
                        continue;
                    }
                    noticed.get_or_insert_with(Instant::now);
                    true
                }
            }
        };
        if writing {
            continue;
        }
        let now = stamp(&path).ok();
        let settled = replaced || now == seen;
        if !replaced {
            // A file written in place has arrived when its stamp stops changing: from the poll
            // that first saw its last stamp.
            if now != seen && now != applied.0 {
                noticed = Some(Instant::now());
            }
            seen = now;
        }
        if now == applied.0 && !forced {
            noticed = None;
            // The file is the version applied: roster is in step with it, however long it has
            // been since it changed. Not while that version is a bad one.
            if now.is_some() && !failing {
                health.synced();
            }
            continue;
        }
        if !settled && !forced {
            continue;
        }
        let was_forced = std::mem::take(&mut forced);
        let p = path.clone();
        let mut taken = index.take();
        let events_since = dir_watch.clone();
        let replaced_only = dir_watch.as_deref().is_some_and(|w| !w.written_in_place());
        let selection = selection.clone();
        let read = move || {
            let _selecting = Selecting::enter(selection);
            let since = || events_since.as_ref().map_or(Seen::Nothing, |w| w.since());
            let result = reread(&p, now, &mut taken, replaced_only, since);
            (result, taken)
        };
        // A small file is read here: handing it to another thread would cost more than reading
        // it, and on a busy core each hand-over waits for the core.
        let result = if now.is_some_and(|s| s.len <= READ_HERE) {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
                .map_err(|_| "a panic".to_owned())
        } else {
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| e.to_string())
        };
        let result = match result {
            Ok((result, kept)) => {
                index = kept;
                result
            }
            Err(e) => {
                // The index went with the reader: the next version is read whole.
                error!(error = %e, "pods file reader panicked");
                continue;
            }
        };
        match result {
            // Caught mid-write: read again at once if the write has finished since, else when
            // it does (or at the next polls).
            Outcome::Raced(seen) => {
                again = seen == Seen::Finished && !written_in_place(dir_watch.as_deref());
                writing = seen == Seen::Writing;
            }
            Outcome::Read(reread) => {
                let at = noticed.take().unwrap_or_else(Instant::now);
                if failing {
                    info!(path = %path.display(), "pods file is valid again");
                    failing = false;
                }
                health.synced();
                again = reread.newer;
                if again {
                    // A newer version landed while this one was read: it had reached roster by
                    // the end of the read at the latest.
                    noticed = Some(Instant::now());
                }
                let unchanged = reread.fingerprint == applied.1;
                applied = (reread.stamp, reread.fingerprint);
                if unchanged {
                    if was_forced {
                        info!(path = %path.display(), pods = reread.pods, "pods file read again; unchanged");
                    }
                    continue;
                }
                let sent = match reread.version {
                    Version::Whole(pods) => {
                        info!(path = %path.display(), pods = reread.pods, "pods file changed; applying it whole");
                        send_list(&events, pods, at).await
                    }
                    Version::Changes { delete, apply } => {
                        info!(
                            path = %path.display(),
                            pods = reread.pods,
                            changed = apply.len(),
                            gone = delete.len(),
                            "pods file changed; applying the pods that changed"
                        );
                        let event = PodEvent::Changes { delete, apply };
                        events.send(Received { at, event }).await
                    }
                };
                if sent.is_err() {
                    return;
                }
                metrics.reloaded();
            }
            Outcome::Failed(e) => {
                // Remember the bad version so it is reported once, not at every poll.
                applied.0 = now;
                noticed = None;
                failing = true;
                warn!(
                    error = %e,
                    failures_total = health.error(),
                    "pods file reload failed; still serving the last good version"
                );
            }
        }
    }
}

/// Events of the file's directory; `None` (polling only) where inotify refuses.
fn watch_dir(path: &Path) -> Option<DirWatch> {
    DirWatch::new(path)
        .inspect_err(|e| {
            warn!(error = %e, path = %path.display(), "cannot watch the pods file's directory; polling every 100 ms only")
        })
        .ok()
}

fn written_in_place(dir_watch: Option<&DirWatch>) -> bool {
    dir_watch.is_some_and(DirWatch::written_in_place)
}

async fn next_event(dir_watch: Option<&DirWatch>) -> std::io::Result<Seen> {
    match dir_watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

/// Sends a whole version as one list; `at` is when the change reached roster.
async fn send_list(
    events: &mpsc::Sender<Received>,
    pods: Vec<PodView>,
    at: Instant,
) -> Result<(), mpsc::error::SendError<Received>> {
    let send = |event| events.send(Received { at, event });
    send(PodEvent::Init(Scope::Cluster)).await?;
    for pod in pods {
        send(PodEvent::InitApply(Scope::Cluster, pod)).await?;
    }
    send(PodEvent::InitDone(Scope::Cluster)).await
}
