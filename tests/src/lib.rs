//! catalog-tests
