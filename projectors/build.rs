//! `sqlx::migrate!` embeds the migrations at compile time; cargo does not know a new file in
//! a migrations folder changes the crate. This tells it (what `sqlx migrate build-script`
//! writes).
fn main() {
    println!("cargo:rerun-if-changed=migrations-postgres");
}
