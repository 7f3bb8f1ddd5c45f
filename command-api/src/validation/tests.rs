use serde_json::json;

use super::*;

fn valid_product() -> Value {
    json!({"sku": "ELEC-1", "name": "Headphones", "category": "electronics",
           "price_cents": 12999, "currency": "USD"})
}

#[test]
fn a_minimal_product_gets_the_defaults() {
    let created = new_product(&valid_product()).expect("valid");
    assert_eq!(created.status, ProductStatus::Draft);
    assert_eq!(
        (
            created.stock.get(),
            created.brand,
            created.description.as_str()
        ),
        (0, None, "")
    );
}

#[test]
fn every_bad_field_is_named_with_dotted_paths() {
    let body = json!({"sku": "bad sku!", "name": "", "category": "Not A Slug",
        "price_cents": -1, "currency": "usd", "stock": 1.5, "status": "gone",
        "attributes": {"color": {"nested": true}}, "images": ["ftp://x"], "sales": 3, "extra": 1});
    let errors = new_product(&body).expect_err("invalid");
    let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        vec![
            "attributes.color",
            "category",
            "currency",
            "extra",
            "images.0",
            "name",
            "price_cents",
            "sales",
            "sku",
            "status",
            "stock"
        ]
    );
}

#[test]
fn missing_required_fields_are_each_reported() {
    let errors = new_product(&json!({})).expect_err("invalid");
    assert_eq!(
        errors.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["category", "currency", "name", "price_cents", "sku"]
    );
    assert_eq!(errors["sku"], vec!["is required".to_owned()]);
}

#[test]
fn a_non_object_body_is_invalid_not_a_crash() {
    for body in [json!([]), json!(null), json!("text"), json!(3)] {
        assert!(new_product(&body).is_err());
        assert!(details_change(&body).is_err());
        assert!(sale(&body).is_err());
    }
}

#[test]
fn a_patch_needs_a_field_and_may_clear_the_brand() {
    assert!(details_change(&json!({})).is_err());
    let change = details_change(&json!({"brand": null})).expect("valid");
    assert_eq!(change.brand, Some(None));
    assert!(details_change(&json!({"name": null})).is_err());
    assert!(details_change(&json!({"price_cents": 3})).is_err());
}

#[test]
fn stock_and_sales_bounds() {
    assert!(stock_adjustment(&json!({"delta": 0})).is_err());
    assert!(stock_adjustment(&json!({"delta": -3, "reason": "recount"})).is_ok());
    assert!(sale(&json!({"quantity": 0})).is_err());
    assert!(sale(&json!({"quantity": 2})).is_ok());
}

#[test]
fn a_category_names_a_valid_parent() {
    assert!(
        new_category(&json!({"slug": "audio", "name": "Audio", "parent": "electronics"})).is_ok()
    );
    assert!(new_category(&json!({"slug": "audio", "name": "Audio", "parent": "audio"})).is_err());
    assert!(new_category(&json!({"slug": "Audio!", "name": "Audio"})).is_err());
}

#[test]
fn each_rule_answers_the_message_api_clients_see() {
    let errors = new_product(&json!({"sku": "", "name": " ", "category": "A",
        "price_cents": 10_000_000_000_001_i64, "currency": "EURO", "stock": -1,
        "status": "gone", "description": "x".repeat(10_001), "brand": ""}))
    .expect_err("invalid");
    let message = |field: &str| errors[field].join("; ");
    assert_eq!(
        message("sku"),
        "must be 1 to 64 of the characters A-Z a-z 0-9 . _ -"
    );
    assert_eq!(
        message("name"),
        "must be 1 to 200 characters, not all blank"
    );
    assert_eq!(
        message("category"),
        "must be a slug: 1 to 64 of the characters a-z 0-9 -"
    );
    assert_eq!(
        message("price_cents"),
        "must be between 0 and 10000000000000"
    );
    assert_eq!(
        message("currency"),
        "must be an ISO 4217 code: 3 upper-case letters"
    );
    assert_eq!(message("stock"), "must be between 0 and 1000000000");
    assert_eq!(
        message("status"),
        "must be one of draft, published, archived"
    );
    assert_eq!(message("description"), "must be at most 10000 characters");
    assert_eq!(message("brand"), "must be 1 to 100 characters, or null");
    let delta = |body| stock_adjustment(&body).expect_err("invalid")["delta"].join("; ");
    assert_eq!(delta(json!({"delta": 0})), "must not be 0");
    assert_eq!(
        delta(json!({"delta": 1_000_000_001})),
        "must be between -1000000000 and 1000000000"
    );
    assert_eq!(
        sale(&json!({"quantity": "2"})).expect_err("invalid")["quantity"],
        vec!["must be an integer".to_owned()]
    );
}

#[test]
fn synonyms_are_trimmed_lower_cased_and_kept_once_per_group() {
    let command = synonyms(&json!({"groups": [[" TV ", "Television", "tv"], ["Sofa", "couch"]]}))
        .expect("valid");
    assert_eq!(
        command.synonyms.into_strings(),
        vec![
            vec!["tv".to_owned(), "television".to_owned()],
            vec!["sofa".to_owned(), "couch".to_owned()]
        ]
    );
}

#[test]
fn an_empty_list_of_synonym_groups_clears_them() {
    let command = synonyms(&json!({"groups": []})).expect("valid");
    assert!(command.synonyms.groups().is_empty());
}

#[test]
fn every_bad_synonym_group_and_word_is_named_by_its_index() {
    let many: Vec<String> = (0..21).map(|index| format!("w{index}")).collect();
    let body = json!({"groups": [
        ["tv", "television"],
        ["tv"],
        ["tv", "TV"],
        "tv",
        ["flat screen", "ok", 3, ""],
        many,
        ["x".repeat(51), "y"],
    ], "extra": 1});
    let errors = synonyms(&body).expect_err("invalid");
    let message = |field: &str| errors[field].join("; ");
    assert_eq!(
        errors.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![
            "extra",
            "groups.1",
            "groups.2",
            "groups.3",
            "groups.4.0",
            "groups.4.2",
            "groups.4.3",
            "groups.5",
            "groups.6.0"
        ]
    );
    assert_eq!(message("groups.1"), "must hold 2 to 20 distinct words");
    assert_eq!(message("groups.2"), "must hold 2 to 20 distinct words");
    assert_eq!(message("groups.3"), "must be an array of 2 to 20 words");
    assert_eq!(
        message("groups.4.0"),
        "must be one word of 1 to 50 letters or digits"
    );
    assert_eq!(message("groups.4.2"), "must be a string");
    assert_eq!(message("groups.5"), "must hold 2 to 20 distinct words");
    assert_eq!(
        message("groups.6.0"),
        "must be one word of 1 to 50 letters or digits"
    );
}

#[test]
fn synonyms_need_a_list_of_at_most_500_groups() {
    let missing = synonyms(&json!({})).expect_err("invalid");
    assert_eq!(missing["groups"], vec!["is required".to_owned()]);
    for not_a_list in [json!(null), json!("tv"), json!({"tv": "television"})] {
        let errors = synonyms(&json!({ "groups": not_a_list })).expect_err("invalid");
        assert_eq!(
            errors["groups"],
            vec!["must be an array of groups, each an array of words".to_owned()]
        );
    }
    let group = json!(["tv", "television"]);
    assert!(synonyms(&json!({"groups": vec![group.clone(); 500]})).is_ok());
    let errors = synonyms(&json!({"groups": vec![group; 501]})).expect_err("invalid");
    assert_eq!(
        errors.keys().collect::<Vec<_>>(),
        vec!["groups"],
        "one error, not one per group"
    );
    assert_eq!(
        errors["groups"],
        vec!["may have at most 500 groups".to_owned()]
    );
    assert!(synonyms(&json!([["tv", "television"]])).is_err());
}

proptest::proptest! {
    #[test]
    fn valid_synonym_groups_come_back_lower_cased_in_their_order(
        groups in proptest::collection::vec(
            proptest::collection::btree_set("[A-Za-z0-9]{1,12}", 2..=20), 0..30),
    ) {
        // Distinct after lower-casing, so nothing is dropped.
        let groups: Vec<Vec<String>> = groups
            .into_iter()
            .map(|words| {
                let mut lower: Vec<String> = Vec::new();
                for word in words {
                    let word = word.to_lowercase();
                    if !lower.contains(&word) {
                        lower.push(word);
                    }
                }
                lower
            })
            .filter(|words| words.len() >= 2)
            .collect();
        let command = synonyms(&json!({ "groups": groups })).expect("valid");
        proptest::prop_assert_eq!(command.synonyms.into_strings(), groups);
    }

    #[test]
    fn any_synonyms_body_is_answered_without_a_panic(
        words in proptest::collection::vec(proptest::option::of("\\PC{0,60}"), 0..25),
        number in proptest::arbitrary::any::<i64>(),
    ) {
        let strings = json!(words);
        for groups in [json!([strings.clone()]), strings.clone(), json!([[number, strings]]), json!(number)] {
            let _ = synonyms(&json!({ "groups": groups }));
        }
    }
}

proptest::proptest! {
    #[test]
    fn a_body_of_valid_values_becomes_a_command_holding_them(
        sku in "[A-Za-z0-9._-]{1,64}",
        name in "[A-Za-z][A-Za-z ]{0,40}",
        category in "[a-z0-9-]{1,64}",
        price_cents in 0..=PriceCents::MAX,
        currency in "[A-Z]{3}",
        stock in 0..=Quantity::MAX,
    ) {
        let body = json!({"sku": sku, "name": name, "category": category,
            "price_cents": price_cents, "currency": currency, "stock": stock});
        let command = new_product(&body).expect("valid");
        proptest::prop_assert_eq!(
            (command.sku.as_str(), command.name.as_str(), command.category.as_str()),
            (sku.as_str(), name.as_str(), category.as_str())
        );
        proptest::prop_assert_eq!(
            (command.price_cents.get(), command.currency.as_str(), command.stock.get()),
            (price_cents, currency.as_str(), stock)
        );
    }

    #[test]
    fn one_bad_value_is_reported_under_its_field_alone(
        field in proptest::sample::select(vec!["sku", "name", "category", "price_cents", "currency", "stock"]),
        bad in proptest::prop_oneof![
            proptest::strategy::Just(json!("")),
            proptest::strategy::Just(json!(-1)),
            proptest::strategy::Just(json!(true)),
            proptest::strategy::Just(json!(1.5)),
        ],
    ) {
        let mut body = valid_product();
        body[field] = bad;
        let errors = new_product(&body).expect_err("invalid");
        proptest::prop_assert_eq!(errors.keys().collect::<Vec<_>>(), vec![field]);
    }

    #[test]
    fn any_json_body_is_answered_without_a_panic(body in proptest::arbitrary::any::<(Option<i64>, Option<String>, bool)>()) {
        let (number, text, flag) = body;
        for field in ["sku", "name", "price_cents", "delta", "quantity", "slug", "parent", "brand"] {
            for value in [json!(number), json!(text), json!(flag), json!({field: number})] {
                let body = json!({field: value});
                let _ = new_product(&body);
                let _ = details_change(&body);
                let _ = stock_adjustment(&body);
                let _ = sale(&body);
                let _ = new_category(&body);
            }
        }
    }
}

#[test]
fn an_integer_written_with_a_zero_fraction_is_an_integer_as_json_schema_says() {
    let quantity = |value: Value| sale(&json!({ "quantity": value }));
    assert_eq!(quantity(json!(3.0)).expect("3.0 is 3").quantity.get(), 3);
    assert_eq!(
        quantity(json!(2.5)).expect_err("a fraction")["quantity"],
        vec!["must be an integer".to_owned()]
    );
    assert_eq!(
        quantity(json!(1e300)).expect_err("beyond i64")["quantity"],
        vec!["must be an integer".to_owned()]
    );
}

#[test]
fn image_urls_are_printable_ascii_after_the_scheme() {
    let images = |list: Value| {
        let mut body = valid_product();
        body["images"] = list;
        new_product(&body).map(|created| created.images)
    };
    assert_eq!(
        images(json!(["http://x", "https://cdn.example.com/a%20b.png"])).expect("valid"),
        vec!["http://x", "https://cdn.example.com/a%20b.png"]
    );
    for bad in [
        "https://",
        "http://",
        "https://a b",
        "https://caf\u{e9}.example",
        "ftp://x",
        "/images/../etc/passwd",
        "/images/a6685cefb1a43d1b80818ddf7c38c675.png",
        "/elsewhere/a6685cefb1a43d1b80818ddf7c38c675.page.jpg",
    ] {
        assert!(images(json!([bad])).is_err(), "{bad:?} was accepted");
    }
    // The catalog's own address of an uploaded image, as the embedded mode lists it, can be
    // sent back (reordering a product's images with PATCH).
    let own = "/images/a6685cefb1a43d1b80818ddf7c38c675.page.jpg";
    assert_eq!(images(json!([own])).expect("valid"), vec![own]);
    let longest = format!("https://{}", "a".repeat(2040));
    assert!(images(json!([longest])).is_ok());
    assert!(images(json!([format!("{longest}a")])).is_err());
}
