//! The guest's imports, served over the cache and the API server (issue 6): see `PluginHost`.
