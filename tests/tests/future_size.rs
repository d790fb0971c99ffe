//! Nested cached calls (a page calling a query calling a query) hold each level's future
//! once: a level adds a constant, so deep nesting cannot overflow a thread's stack. (Before,
//! each level held the one below twice: 2.4 KB, 7.1 KB, 16.6 KB, ...)

use cache_runtime::cached_query;

#[cached_query(key = "size:leaf:{id}")]
async fn leaf(id: u32) -> Option<u32> {
    Some(id)
}

#[cached_query(key = "size:one:{id}")]
async fn one(id: u32) -> Option<u32> {
    leaf(id).await
}

#[cached_query(key = "size:two:{id}")]
async fn two(id: u32) -> Option<u32> {
    one(id).await
}

#[cached_query(key = "size:three:{id}")]
async fn three(id: u32) -> Option<u32> {
    two(id).await
}

#[test]
fn each_level_of_nesting_adds_a_constant() {
    let sizes = [
        std::mem::size_of_val(&leaf(1)),
        std::mem::size_of_val(&one(1)),
        std::mem::size_of_val(&two(1)),
        std::mem::size_of_val(&three(1)),
    ];
    let steps: Vec<usize> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|&step| step <= sizes[0] + 64),
        "sizes {sizes:?}: a level should add about one leaf's worth, not double"
    );
}
