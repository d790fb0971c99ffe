use cache_runtime::cached_query;

struct Users;

// A macro cannot see the `impl` around it: a function without `self` that does not name
// `Self` in its signature is taken for a free function, and its companions do not find the
// spec they share with it (`__CACHE_SPEC_NAME`, an associated `const` here). The fix: name
// `Self` (`where Self: Sized`), as in ui/pass/invalidate.rs.
impl Users {
    #[cached_query(key = "user:{id}")]
    async fn name(id: u32) -> String {
        format!("user {id}")
    }
}

fn main() {}
