//! Reads: get and list, with the real server's resourceVersion semantics.
//!
//! | resourceVersion | match          | served                                             |
//! |-----------------|----------------|----------------------------------------------------|
//! | unset           | -              | latest, paginated                                  |
//! | `0`             | unset/NotOlder | latest, `limit` ignored (as the watch cache does)  |
//! | `N`             | unset, no limit| latest, if `N` is not in the future                |
//! | `N`             | unset, limit   | exactly `N` (legacy paginated semantics)           |
//! | `N`             | NotOlderThan   | latest, if `N` is not in the future                |
//! | `N`             | Exact          | exactly `N`, 410 once `N` left the history window  |
//!
//! Continue tokens pin later pages to the first page's snapshot (410 Expired when it left
//! the window; the Status then carries a token that continues inconsistently at latest).

use std::sync::Arc;

use trellis_selector::{FieldSelector, LabelSelector};

use crate::cluster::Cluster;
use crate::fields::SelectableField;
use crate::object::{ObjKey, StoredObject};
use crate::query::{ListOptions, continue_token, decode_continue};
use crate::registry::ResourceType;
use crate::status::ApiError;
use crate::store::{ReadAt, ReadError};

/// One page of a list, before rendering.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<Arc<StoredObject>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Whether an object passes a list's or watch's filters.
pub struct Filter<'a> {
    pub namespace: Option<&'a str>,
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
    /// The names `fields` uses: the `selectable` list of the version listed or watched.
    pub field_names: &'a [SelectableField],
}

impl Filter<'_> {
    pub fn matches(&self, object: &StoredObject) -> bool {
        self.namespace.is_none_or(|ns| &*object.key.namespace == ns)
            && self.labels.matches(&object.labels)
            && self.fields.matches(&object.fields.named(self.field_names))
    }
}

impl Cluster {
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.store
            .get(&resource.storage_key(), &ObjKey::new(namespace, name))
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<Listing, ApiError> {
        let (at, after, limit) = match &options.continue_token {
            Some(token) => {
                let (rv, after) = decode_continue(token, resource.namespaced)?;
                let at = rv.map_or(ReadAt::Latest, ReadAt::Exact);
                (at, Some(after), options.limit)
            }
            None => {
                let rv = options.resource_version()?;
                let exact = options.resource_version_match.as_deref() == Some("Exact")
                    || (options.resource_version_match.is_none() && options.limit.is_some());
                match rv {
                    None if options.resource_version.is_some() => (ReadAt::Latest, None, None),
                    None => (ReadAt::Latest, None, options.limit),
                    Some(rv) if exact => (ReadAt::Exact(rv), None, options.limit),
                    Some(rv) => {
                        let current = self.store.current_rv();
                        if rv > current {
                            return Err(ApiError::too_large_resource_version(rv, current));
                        }
                        (ReadAt::Latest, None, options.limit)
                    }
                }
            }
        };
        let filter = Filter {
            namespace,
            labels: &options.labels,
            fields: &options.fields,
            field_names: &resource.selectable,
        };
        let page = self
            .store
            .list(
                &resource.storage_key(),
                at,
                namespace,
                after.as_ref(),
                limit,
                |o| filter.matches(o),
            )
            .map_err(|e| match (e, &options.continue_token, &after) {
                (ReadError::Expired { .. }, Some(_), Some(after)) => {
                    let mut error = ApiError::expired(EXPIRED_CONTINUE);
                    error.details = None;
                    error.continue_token = Some(continue_token(0, after));
                    error
                }
                (ReadError::Expired { .. }, _, _) => {
                    ApiError::expired("The resourceVersion for the provided list is too old.")
                }
                (ReadError::TooLarge { requested, current }, _, _) => {
                    ApiError::too_large_resource_version(requested, current)
                }
            })?;
        Ok(Listing {
            continue_token: page.more.as_ref().map(|k| continue_token(page.rv, k)),
            resource_version: page.rv,
            items: page.items,
        })
    }
}
