//! Facets in the collector pass of the search itself: a [`FacetCollector`] reads the
//! `category` and `brand_raw` columns as term ordinals and `price_cents` as numbers, counts into
//! flat arrays per segment (no allocation per document), and turns ordinals into strings once
//! per segment at the end.

use std::collections::BTreeMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use crate::{Facets, PRICE_BUCKETS};

/// Which facets a pass counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wanted {
    pub category: bool,
    pub brand: bool,
    pub price: bool,
}

impl Wanted {
    pub const ALL: Wanted = Wanted {
        category: true,
        brand: true,
        price: true,
    };
}

/// Counts the facets of every document it is given.
pub(super) struct FacetCollector {
    pub wanted: Wanted,
}

pub(super) struct SegmentFacets {
    category: Option<(StrColumn, Vec<u32>)>,
    brand: Option<(StrColumn, Vec<u32>)>,
    price: Option<(Column<i64>, [u64; 3])>,
}

/// The counts of one segment, by value.
#[derive(Default)]
pub(super) struct Counted {
    category: BTreeMap<String, u64>,
    brand: BTreeMap<String, u64>,
    price: [u64; 3],
}

fn ordinals(reader: &SegmentReader, field: &str) -> tantivy::Result<Option<(StrColumn, Vec<u32>)>> {
    Ok(reader.fast_fields().str(field)?.map(|column| {
        let terms = column.num_terms();
        (column, vec![0u32; terms])
    }))
}

impl Collector for FacetCollector {
    type Fruit = Counted;
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentFacets> {
        Ok(SegmentFacets {
            category: if self.wanted.category {
                ordinals(reader, "category")?
            } else {
                None
            },
            brand: if self.wanted.brand {
                ordinals(reader, "brand_raw")?
            } else {
                None
            },
            price: if self.wanted.price {
                Some((reader.fast_fields().i64("price_cents")?, [0; 3]))
            } else {
                None
            },
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<Counted>) -> tantivy::Result<Counted> {
        let mut all = Counted::default();
        for segment in segments {
            for (key, count) in segment.category {
                *all.category.entry(key).or_default() += count;
            }
            for (key, count) in segment.brand {
                *all.brand.entry(key).or_default() += count;
            }
            for (total, count) in all.price.iter_mut().zip(segment.price) {
                *total += count;
            }
        }
        Ok(all)
    }
}

/// The bucket of a price: below 25.00, 25.00 to 100.00, from 100.00 ([`PRICE_BUCKETS`]).
fn bucket(price: i64) -> usize {
    PRICE_BUCKETS
        .iter()
        .position(|(from, to)| {
            from.is_none_or(|from| price >= from) && to.is_none_or(|to| price < to)
        })
        .unwrap_or(PRICE_BUCKETS.len() - 1)
}

fn count_ordinal(column: &mut Option<(StrColumn, Vec<u32>)>, doc: DocId) {
    if let Some((column, counts)) = column {
        for ordinal in column.term_ords(doc) {
            if let Some(count) = counts.get_mut(ordinal as usize) {
                *count += 1;
            }
        }
    }
}

fn by_value(column: Option<(StrColumn, Vec<u32>)>) -> BTreeMap<String, u64> {
    let mut values = BTreeMap::new();
    let Some((column, counts)) = column else {
        return values;
    };
    let mut text = String::new();
    for (ordinal, count) in counts.into_iter().enumerate() {
        if count == 0 {
            continue;
        }
        text.clear();
        if let Ok(true) = column.ord_to_str(ordinal as u64, &mut text) {
            values.insert(text.clone(), u64::from(count));
        }
    }
    values
}

impl SegmentCollector for SegmentFacets {
    type Fruit = Counted;

    fn collect(&mut self, doc: DocId, _score: Score) {
        count_ordinal(&mut self.category, doc);
        count_ordinal(&mut self.brand, doc);
        if let Some((column, counts)) = &mut self.price {
            if let Some(price) = column.first(doc) {
                counts[bucket(price)] += 1;
            }
        }
    }

    fn harvest(self) -> Counted {
        Counted {
            price: self.price.map(|(_, counts)| counts).unwrap_or_default(),
            category: by_value(self.category),
            brand: by_value(self.brand),
        }
    }
}

impl Counted {
    /// The facets of the port, each of the three from `self` or, for a facet with a filter of
    /// its own, from the pass that ignored that filter.
    pub(super) fn into_facets(self, category: Option<Counted>, brand: Option<Counted>) -> Facets {
        let mut facets = Facets::empty();
        facets.category = category.map_or(self.category, |other| other.category);
        facets.brand = brand.map_or(self.brand, |other| other.brand);
        facets.price = crate::answers::price_buckets(self.price);
        facets
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn prices_fall_in_the_buckets_of_the_contract() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(2_499), 0);
        assert_eq!(bucket(2_500), 1);
        assert_eq!(bucket(9_999), 1);
        assert_eq!(bucket(10_000), 2);
        assert_eq!(bucket(i64::MAX), 2);
    }
}
