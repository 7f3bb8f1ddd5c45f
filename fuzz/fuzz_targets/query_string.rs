//! The query strings of listings, searches and suggestions, through the extractors the routes
//! use: never a panic; a refusal is a 400; what is accepted is within the documented bounds.
#![no_main]

use axum::extract::FromRequestParts;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use query_api::routes::search::{
    parse_search_params, parse_suggest_params, SearchParams, SuggestParams, MAX_QUERY_CHARS,
    MAX_SUGGEST_CHARS,
};
use query_api::routes::{parse_list_params, ListParams, MAX_FILTER_VALUES};
use web::extract::{MultiQuery, Query};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    // What hyper would refuse before any route sees it is not ours to parse.
    let Ok(request) = Request::builder().uri(format!("/?{query}")).body(()) else {
        return;
    };
    let (mut parts, ()) = request.into_parts();
    futures::executor::block_on(async {
        match MultiQuery::<ListParams>::from_request_parts(&mut parts, &()).await {
            Ok(MultiQuery(params)) => match parse_list_params(params) {
                Ok(list) => {
                    assert!((1..=100).contains(&list.limit));
                    assert!(list.categories.len() <= MAX_FILTER_VALUES);
                    assert!(list.brands.len() <= MAX_FILTER_VALUES);
                }
                Err(problem) => assert_eq!(problem.0.status, 400),
            },
            Err(problem) => assert_eq!(problem.status, 400),
        }
        match MultiQuery::<SearchParams>::from_request_parts(&mut parts, &()).await {
            Ok(MultiQuery(params)) => match parse_search_params(params) {
                Ok(search) => {
                    assert!(search.text.chars().count() <= MAX_QUERY_CHARS);
                    assert!((1..=100).contains(&search.limit));
                }
                Err(problem) => assert_eq!(problem.0.status, 400),
            },
            Err(problem) => assert_eq!(problem.status, 400),
        }
        match Query::<SuggestParams>::from_request_parts(&mut parts, &()).await {
            Ok(Query(params)) => match parse_suggest_params(params) {
                Ok(suggest) => {
                    assert!(suggest.text.chars().count() <= MAX_SUGGEST_CHARS);
                    assert!((1..=20).contains(&suggest.limit));
                }
                Err(problem) => assert_eq!(problem.0.status, 400),
            },
            Err(problem) => assert_eq!(problem.status, 400),
        }
    });
});
