//! Values written by one deploy and read by the next, whose types changed, on both backends:
//! the compact default never reads a value into the wrong fields (every change is a miss),
//! and values kept with field names follow serde's rules. Two functions on one key stand for
//! the same function before and after a deploy.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use cache_runtime::{Cache, cached_query};
use cache_tests::{Backend, test_cache};
use serde::{Deserialize, Serialize};

struct Env {
    cache: Cache,
}

impl Env {
    async fn memory(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Memory, test, |b| b).await.0,
        }
    }
    async fn redis(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Redis, test, |b| b).await.0,
        }
    }
    async fn cluster(test: &str) -> Env {
        Env {
            cache: test_cache(Backend::Cluster, test, |b| b).await.0,
        }
    }
    async fn run<F: Future>(&self, f: F) -> F::Output {
        cache_runtime::scope(self.cache.clone(), f).await
    }
}

mod before {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct User {
        pub first: String,
        pub last: String,
    }
}

mod after {
    /// The same fields, reordered: positional bytes of `before::User` would read swapped.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    pub struct User {
        pub last: String,
        pub first: String,
    }
}

#[cached_query(key = "deploy_user", skip(runs))]
async fn user_before(runs: &AtomicUsize) -> before::User {
    runs.fetch_add(1, SeqCst);
    before::User {
        first: "Ada".into(),
        last: "Lovelace".into(),
    }
}

#[cached_query(key = "deploy_user", skip(runs))]
async fn user_after(runs: &AtomicUsize) -> after::User {
    runs.fetch_add(1, SeqCst);
    after::User {
        last: "Lovelace".into(),
        first: "Ada".into(),
    }
}

/// A type with a `serde_json::Value`: kept with field names.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Profile {
    name: String,
    extra: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ProfileWithBio {
    name: String,
    extra: serde_json::Value,
    #[serde(default)]
    bio: Option<String>,
}

#[cached_query(key = "deploy_profile", skip(runs))]
async fn profile_before(runs: &AtomicUsize) -> Profile {
    runs.fetch_add(1, SeqCst);
    Profile {
        name: "ada".into(),
        extra: serde_json::json!({"lang": "en"}),
    }
}

#[cached_query(key = "deploy_profile", skip(runs))]
async fn profile_after(runs: &AtomicUsize) -> ProfileWithBio {
    runs.fetch_add(1, SeqCst);
    ProfileWithBio {
        name: "ada".into(),
        extra: serde_json::json!({"lang": "en"}),
        bio: Some("new".into()),
    }
}

cache_tests::on_both_backends!(
    a_reordered_struct_is_a_miss_not_swapped_fields,
    values_with_field_names_follow_serde_defaults,
);
cache_tests::on_cluster!(
    a_reordered_struct_is_a_miss_not_swapped_fields,
    values_with_field_names_follow_serde_defaults,
);

async fn a_reordered_struct_is_a_miss_not_swapped_fields(env: Env) {
    let runs = AtomicUsize::new(0);
    env.run(user_before(&runs)).await;
    assert_eq!(env.run(user_before(&runs)).await.first, "Ada");
    assert_eq!(runs.load(SeqCst), 1, "the first deploy hits");
    let after = env.run(user_after(&runs)).await;
    assert_eq!(
        (after.first.as_str(), after.last.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(runs.load(SeqCst), 2, "the new deploy recomputed");
    assert_eq!(env.cache.stats().decode_errors, 1);
    env.run(user_after(&runs)).await;
    assert_eq!(runs.load(SeqCst), 2, "and its value is a hit from then on");
}

async fn values_with_field_names_follow_serde_defaults(env: Env) {
    let runs = AtomicUsize::new(0);
    env.run(profile_before(&runs)).await;
    let after = env.run(profile_after(&runs)).await;
    assert_eq!(
        after.bio, None,
        "read the old value, the added field defaulted"
    );
    assert_eq!(after.extra["lang"], "en");
    assert_eq!(runs.load(SeqCst), 1);
}
