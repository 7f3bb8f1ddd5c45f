//! The catalog's value types: a `Sku`, `Slug`, `Currency`, `PriceCents`, stock `Quantity`, the
//! search `Synonyms`, …
//! each made only through its `parse`, so whatever holds one needs no further check.
//!
//! The write side (command validation) and the read side (listing and search filters) parse
//! through the same types, so a rule lives in one place. Events keep plain strings and integers
//! on purpose: an event is a fact already accepted, and decoding an old one must not fail
//! because a rule was tightened later.
//!
//! A [`ValueError`]'s text is the message a 422 lists under the field's name (API.md), so it
//! never names the field itself: the caller knows which field it parsed.

use std::fmt;

/// Why a value was refused; the text is the per-field message of a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("must be 1 to 64 of the characters A-Z a-z 0-9 . _ -")]
    Sku,
    #[error("must be a slug: 1 to 64 of the characters a-z 0-9 -")]
    Slug,
    #[error("must be an ISO 4217 code: 3 upper-case letters")]
    Currency,
    #[error("must be 1 to 200 characters, not all blank")]
    Name,
    #[error("must be 1 to 100 characters, or null")]
    Brand,
    #[error("must be one of draft, published, archived")]
    Status,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must be between {min} and {max}")]
    OutOfRange { min: i64, max: i64 },
    #[error("must not be 0")]
    Zero,
    #[error("must be one word of 1 to 50 letters or digits")]
    SynonymTerm,
    #[error("must hold 2 to 20 distinct words")]
    SynonymGroup,
    #[error("may have at most 500 groups")]
    SynonymGroups,
}

/// A text value type: parsed from `&str`, read back as `&str`. Attributes given (docs, an
/// extra derive) go on the struct.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// An integer value type: parsed from `i64`, read back with `get`. Attributes given go on the
/// struct.
macro_rules! integer_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(formatter)
            }
        }
    };
}

/// 1 to 64 characters, each one `allowed` (all ASCII, so bytes and characters agree).
fn short_code(text: &str, allowed: fn(char) -> bool) -> bool {
    (1..=64).contains(&text.len()) && text.chars().all(allowed)
}

fn in_range(number: i64, min: i64, max: i64) -> Result<i64, ValueError> {
    if (min..=max).contains(&number) {
        Ok(number)
    } else {
        Err(ValueError::OutOfRange { min, max })
    }
}

fn at_most(text: &str, max: usize) -> Result<String, ValueError> {
    if text.chars().count() > max {
        Err(ValueError::TooLong { max })
    } else {
        Ok(text.to_owned())
    }
}

text_value!(
    /// A product's stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    Sku
);

impl Sku {
    pub fn parse(text: &str) -> Result<Sku, ValueError> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if short_code(text, allowed) {
            Ok(Sku(text.to_owned()))
        } else {
            Err(ValueError::Sku)
        }
    }
}

text_value!(
    /// A category's slug (`[a-z0-9-]{1,64}`): a category's key, a product's category, a
    /// listing's or a search's category filter.
    Slug
);

impl Slug {
    pub fn parse(text: &str) -> Result<Slug, ValueError> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if short_code(text, allowed) {
            Ok(Slug(text.to_owned()))
        } else {
            Err(ValueError::Slug)
        }
    }
}

text_value!(
    /// An ISO 4217 currency code: 3 upper-case letters.
    Currency
);

impl Currency {
    pub fn parse(text: &str) -> Result<Currency, ValueError> {
        if text.len() == 3 && text.chars().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency(text.to_owned()))
        } else {
            Err(ValueError::Currency)
        }
    }
}

text_value!(
    /// A product's or a category's name: 1 to 200 characters, not all blank.
    Name
);

impl Name {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(text: &str) -> Result<Name, ValueError> {
        if text.trim().is_empty() || text.chars().count() > Self::MAX_CHARS {
            Err(ValueError::Name)
        } else {
            Ok(Name(text.to_owned()))
        }
    }
}

text_value!(
    /// A product's brand: 1 to 100 characters, not all blank.
    Brand
);

impl Brand {
    /// Also the longest brand a listing or a search filters on.
    pub const MAX_CHARS: usize = 100;

    pub fn parse(text: &str) -> Result<Brand, ValueError> {
        if text.trim().is_empty() || text.chars().count() > Self::MAX_CHARS {
            Err(ValueError::Brand)
        } else {
            Ok(Brand(text.to_owned()))
        }
    }
}

text_value!(
    /// A product's description: at most 10,000 characters (may be empty, the default).
    #[derive(Default)]
    Description
);

impl Description {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(text: &str) -> Result<Description, ValueError> {
        at_most(text, Self::MAX_CHARS).map(Description)
    }
}

text_value!(
    /// Why stock was adjusted: at most 200 characters.
    Reason
);

impl Reason {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(text: &str) -> Result<Reason, ValueError> {
        at_most(text, Self::MAX_CHARS).map(Reason)
    }
}

integer_value!(
    /// A price in minor units: 0 to 10,000,000,000,000.
    PriceCents
);

impl PriceCents {
    pub const MAX: i64 = 10_000_000_000_000;

    pub fn parse(number: i64) -> Result<PriceCents, ValueError> {
        in_range(number, 0, Self::MAX).map(PriceCents)
    }
}

integer_value!(
    /// A stock level: 0 to 1,000,000,000 units. A product's stock never leaves this range.
    /// The default, no stock, is a new product's.
    #[derive(Default)]
    Quantity
);

impl Quantity {
    pub const MAX: i64 = 1_000_000_000;

    pub fn parse(number: i64) -> Result<Quantity, ValueError> {
        in_range(number, 0, Self::MAX).map(Quantity)
    }
}

integer_value!(
    /// The units one sale takes: 1 to 1,000,000.
    SaleQuantity
);

impl SaleQuantity {
    pub const MAX: i64 = 1_000_000;

    pub fn parse(number: i64) -> Result<SaleQuantity, ValueError> {
        in_range(number, 1, Self::MAX).map(SaleQuantity)
    }
}

integer_value!(
    /// A change of stock: non-zero, at most a whole [`Quantity::MAX`] either way.
    StockDelta
);

impl StockDelta {
    pub fn parse(number: i64) -> Result<StockDelta, ValueError> {
        let delta = in_range(number, -Quantity::MAX, Quantity::MAX)?;
        if delta == 0 {
            return Err(ValueError::Zero);
        }
        Ok(StockDelta(delta))
    }
}

text_value!(
    /// One word of a synonym group: trimmed and lower-cased, 1 to 50 letters or digits, so it
    /// is exactly one of the words search splits a query into (`search::words`: anything but
    /// a letter or digit separates words).
    SynonymTerm
);

impl SynonymTerm {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(text: &str) -> Result<SynonymTerm, ValueError> {
        let word = text.trim();
        let count = word.chars().count();
        if count == 0 || count > Self::MAX_CHARS || !word.chars().all(char::is_alphanumeric) {
            return Err(ValueError::SynonymTerm);
        }
        Ok(SynonymTerm(word.to_lowercase()))
    }
}

/// Words a shopper means alike ("tv", "television"): 2 to 20 distinct [`SynonymTerm`]s, in
/// the order first given (a repeated word is dropped, not refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SynonymGroup(Vec<SynonymTerm>);

impl SynonymGroup {
    pub const MIN_TERMS: usize = 2;
    pub const MAX_TERMS: usize = 20;

    pub fn parse(terms: Vec<SynonymTerm>) -> Result<SynonymGroup, ValueError> {
        let mut distinct: Vec<SynonymTerm> = Vec::with_capacity(terms.len());
        for term in terms {
            if !distinct.contains(&term) {
                distinct.push(term);
            }
        }
        if !(Self::MIN_TERMS..=Self::MAX_TERMS).contains(&distinct.len()) {
            return Err(ValueError::SynonymGroup);
        }
        Ok(SynonymGroup(distinct))
    }

    pub fn terms(&self) -> &[SynonymTerm] {
        &self.0
    }

    /// The words as plain strings (an event's form).
    pub fn into_strings(self) -> Vec<String> {
        self.0.into_iter().map(SynonymTerm::into_string).collect()
    }
}

/// The search synonyms an admin sets: at most 500 [`SynonymGroup`]s (none clears them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Synonyms(Vec<SynonymGroup>);

impl Synonyms {
    pub const MAX_GROUPS: usize = 500;

    pub fn parse(groups: Vec<SynonymGroup>) -> Result<Synonyms, ValueError> {
        if groups.len() > Self::MAX_GROUPS {
            return Err(ValueError::SynonymGroups);
        }
        Ok(Synonyms(groups))
    }

    pub fn groups(&self) -> &[SynonymGroup] {
        &self.0
    }

    /// The groups as plain strings (an event's form).
    pub fn into_strings(self) -> Vec<Vec<String>> {
        self.0.into_iter().map(SynonymGroup::into_strings).collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_sku_of_the_allowed_characters_parses_and_reads_back(text in "[A-Za-z0-9._-]{1,64}") {
            prop_assert_eq!(Sku::parse(&text).map(Sku::into_string), Ok(text));
        }

        #[test]
        fn a_sku_with_any_other_character_is_refused(
            before in "[A-Za-z0-9]{0,30}",
            bad in "[^A-Za-z0-9._-]",
            after in "[A-Za-z0-9]{0,30}",
        ) {
            prop_assert_eq!(Sku::parse(&format!("{before}{bad}{after}")), Err(ValueError::Sku));
        }

        #[test]
        fn a_sku_longer_than_64_is_refused(text in "[A-Za-z0-9]{65,80}") {
            prop_assert_eq!(Sku::parse(&text), Err(ValueError::Sku));
        }

        #[test]
        fn a_slug_of_the_allowed_characters_parses_and_is_also_a_valid_sku(text in "[a-z0-9-]{1,64}") {
            prop_assert_eq!(Slug::parse(&text).map(Slug::into_string), Ok(text.clone()));
            prop_assert!(Sku::parse(&text).is_ok());
        }

        #[test]
        fn a_slug_with_an_upper_case_letter_or_a_symbol_is_refused(
            before in "[a-z0-9-]{0,30}",
            bad in "[^a-z0-9-]",
            after in "[a-z0-9-]{0,30}",
        ) {
            prop_assert_eq!(Slug::parse(&format!("{before}{bad}{after}")), Err(ValueError::Slug));
        }

        #[test]
        fn only_three_upper_case_letters_are_a_currency(text in "\\PC{0,5}") {
            let expected = text.len() == 3 && text.chars().all(|c| c.is_ascii_uppercase());
            prop_assert_eq!(Currency::parse(&text).is_ok(), expected);
        }

        #[test]
        fn a_name_is_refused_exactly_when_blank_or_over_200_characters(text in "\\PC{0,210}|[ \t]{0,5}") {
            let refused = text.trim().is_empty() || text.chars().count() > 200;
            prop_assert_eq!(Name::parse(&text).is_err(), refused);
        }

        #[test]
        fn a_brand_is_refused_exactly_when_blank_or_over_100_characters(text in "\\PC{0,110}|[ \t]{0,5}") {
            let refused = text.trim().is_empty() || text.chars().count() > 100;
            prop_assert_eq!(Brand::parse(&text).is_err(), refused);
        }

        #[test]
        fn texts_with_only_a_length_limit_count_characters_not_bytes(count in 0usize..260) {
            let text = "é".repeat(count);
            prop_assert_eq!(Reason::parse(&text).is_ok(), count <= 200);
            prop_assert!(Description::parse(&text).is_ok());
        }

        #[test]
        fn a_price_parses_exactly_within_its_range(number in any::<i64>()) {
            let parsed = PriceCents::parse(number);
            if (0..=PriceCents::MAX).contains(&number) {
                prop_assert_eq!(parsed.map(PriceCents::get), Ok(number));
            } else {
                prop_assert_eq!(parsed, Err(ValueError::OutOfRange { min: 0, max: PriceCents::MAX }));
            }
        }

        #[test]
        fn a_stock_level_parses_exactly_within_its_range(number in any::<i64>()) {
            prop_assert_eq!(Quantity::parse(number).is_ok(), (0..=Quantity::MAX).contains(&number));
        }

        #[test]
        fn a_sale_takes_at_least_one_unit(number in -10i64..2_000_000) {
            prop_assert_eq!(SaleQuantity::parse(number).is_ok(), (1..=SaleQuantity::MAX).contains(&number));
        }

        #[test]
        fn a_stock_delta_is_non_zero_and_at_most_a_whole_stock(number in any::<i64>()) {
            let parsed = StockDelta::parse(number);
            if number == 0 {
                prop_assert_eq!(parsed, Err(ValueError::Zero));
            } else if number.checked_abs().is_none_or(|size| size > Quantity::MAX) {
                prop_assert_eq!(parsed, Err(ValueError::OutOfRange { min: -Quantity::MAX, max: Quantity::MAX }));
            } else {
                prop_assert_eq!(parsed.map(StockDelta::get), Ok(number));
            }
        }
    }

    fn terms(words: &[&str]) -> Vec<SynonymTerm> {
        words
            .iter()
            .map(|word| SynonymTerm::parse(word).expect("valid"))
            .collect()
    }

    proptest! {
        #[test]
        fn a_synonym_term_of_letters_and_digits_is_trimmed_and_lower_cased(
            word in "[A-Za-z0-9ÀÉÜßçé]{1,50}",
            before in "[ \t]{0,3}",
            after in "[ \t]{0,3}",
        ) {
            let parsed = SynonymTerm::parse(&format!("{before}{word}{after}"));
            prop_assert_eq!(parsed.map(SynonymTerm::into_string), Ok(word.to_lowercase()));
        }

        #[test]
        fn a_synonym_term_with_a_separator_inside_is_refused(
            first in "[a-z0-9]{1,20}",
            separator in "[ _.,!?'/-]",
            second in "[a-z0-9]{1,20}",
        ) {
            prop_assert_eq!(
                SynonymTerm::parse(&format!("{first}{separator}{second}")),
                Err(ValueError::SynonymTerm)
            );
        }

        #[test]
        fn a_synonym_term_over_50_characters_is_refused(word in "[a-zé]{51,80}") {
            prop_assert_eq!(SynonymTerm::parse(&word), Err(ValueError::SynonymTerm));
        }

        #[test]
        fn a_group_keeps_each_word_once_in_the_order_first_given(
            words in proptest::collection::vec("[a-c]{1,2}", 0..30),
        ) {
            let mut distinct: Vec<String> = Vec::new();
            for word in &words {
                if !distinct.contains(word) {
                    distinct.push(word.clone());
                }
            }
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let parsed = SynonymGroup::parse(terms(&words));
            if (2..=20).contains(&distinct.len()) {
                prop_assert_eq!(parsed.map(SynonymGroup::into_strings), Ok(distinct));
            } else {
                prop_assert_eq!(parsed, Err(ValueError::SynonymGroup));
            }
        }
    }

    #[test]
    fn blank_and_empty_synonym_terms_are_refused() {
        for text in ["", " ", "\t\n"] {
            assert_eq!(SynonymTerm::parse(text), Err(ValueError::SynonymTerm));
        }
        assert_eq!(
            SynonymTerm::parse(&"a".repeat(50)).map(SynonymTerm::into_string),
            Ok("a".repeat(50))
        );
    }

    #[test]
    fn a_group_of_one_distinct_word_or_of_more_than_20_is_refused() {
        assert_eq!(
            SynonymGroup::parse(terms(&["TV", "tv", " tv"])),
            Err(ValueError::SynonymGroup)
        );
        let many: Vec<String> = (0..21).map(|index| format!("w{index}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            SynonymGroup::parse(terms(&many)),
            Err(ValueError::SynonymGroup)
        );
        assert!(SynonymGroup::parse(terms(&many[..20])).is_ok());
    }

    #[test]
    fn synonyms_hold_at_most_500_groups_and_none_is_allowed() {
        let group = SynonymGroup::parse(terms(&["tv", "television"])).expect("valid");
        assert!(Synonyms::parse(vec![group.clone(); 500]).is_ok());
        assert_eq!(
            Synonyms::parse(vec![group; 501]),
            Err(ValueError::SynonymGroups)
        );
        assert_eq!(
            Synonyms::parse(Vec::new()).map(Synonyms::into_strings),
            Ok(Vec::new())
        );
    }

    #[test]
    fn the_messages_are_the_ones_api_clients_see() {
        assert_eq!(
            ValueError::OutOfRange { min: 0, max: 5 }.to_string(),
            "must be between 0 and 5"
        );
        assert_eq!(
            ValueError::TooLong { max: 200 }.to_string(),
            "must be at most 200 characters"
        );
        assert_eq!(ValueError::Zero.to_string(), "must not be 0");
    }
}
