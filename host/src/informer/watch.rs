//! One watch of one scope (all namespaces, or one namespace): kube-runtime's watcher, with
//! backoff, plus the one thing it does not do — fall back from a streaming list to a paginated
//! one when the server refuses `sendInitialEvents`.
//!
//! kube-runtime handles the rest: resuming a dropped watch from the last resourceVersion
//! (bookmarks on), relisting on 410 Gone, and the backoff between failures (client-go's
//! parameters: 800 ms doubling to 30 s, with jitter, reset after 120 s of health).
//!
//! Fallback rule: while the scope has never completed a list, an error whose status is 400
//! (Bad Request) or 422 (Invalid) from a streaming watch means the server does not accept the
//! streaming-list parameters (a server without the WatchList feature rejects
//! `sendInitialEvents` / `resourceVersionMatch` on watch). The scope then switches to
//! list-then-watch with the configured page size for the rest of its life. If the paginated
//! list is rejected as well, the request itself is at fault (e.g. a field selector the kind
//! does not support) and the informer reports it.

use std::fmt::Debug;

use futures::stream::{BoxStream, Stream, StreamExt};
use kube::Api;
use kube::core::Resource;
use kube::core::Status;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, InitialListStrategy};
use serde::de::DeserializeOwned;

/// What a scope's stream yields.
#[derive(Debug)]
pub(crate) enum WatchItem<K> {
    Event(Event<K>),
    /// A failure; the watch retries after a backoff.
    Error(watcher::Error),
    /// The server refused a streaming list; this scope now lists in pages.
    FellBack {
        reason: String,
    },
}

/// The server's status when it refused the request outright (400 or 422): retrying the same
/// request cannot succeed.
pub(crate) fn rejection(error: &watcher::Error) -> Option<&Status> {
    let status: &Status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => status,
        _ => return None,
    };
    matches!(status.code, 400 | 422).then_some(status)
}

struct Scope<K: Resource + 'static> {
    api: Api<K>,
    config: watcher::Config,
    stream: BoxStream<'static, watcher::Result<Event<K>>>,
    listed_once: bool,
}

fn start<K>(api: Api<K>, config: watcher::Config) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher::watcher(api, config).default_backoff().boxed()
}

/// The endless stream of one scope's watch.
pub(crate) fn scope_stream<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = WatchItem<K>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = start(api.clone(), config.clone());
    let scope = Scope {
        api,
        config,
        stream,
        listed_once: false,
    };
    futures::stream::unfold(scope, |mut scope| async move {
        let item = match scope.stream.next().await? {
            Ok(event) => {
                if matches!(event, Event::InitDone) {
                    scope.listed_once = true;
                }
                WatchItem::Event(event)
            }
            Err(error)
                if !scope.listed_once
                    && scope.config.initial_list_strategy == InitialListStrategy::StreamingList
                    && rejection(&error).is_some() =>
            {
                scope.config.initial_list_strategy = InitialListStrategy::ListWatch;
                scope.stream = start(scope.api.clone(), scope.config.clone());
                WatchItem::FellBack {
                    reason: error.to_string(),
                }
            }
            Err(error) => WatchItem::Error(error),
        };
        Some((item, scope))
    })
}
