# Sourced by scripts/test.sh and scripts/fuzz.sh: cargo-installed tools, kept under
# ~/.cache/catalog-tools (CATALOG_TOOLS_DIR moves it) so a clean clone installs each once.
TOOLS_DIR=${CATALOG_TOOLS_DIR:-$HOME/.cache/catalog-tools}

# cargo_tool NAME VERSION: prints the path of NAME's binary at VERSION, installing it with
# `cargo install --locked` first when it is missing or at another version. Status 1 when it
# cannot be installed (the caller says so).
cargo_tool() {
    local name=$1 version=$2
    local binary=$TOOLS_DIR/$name/bin/$name
    if ! "$binary" --version 2>/dev/null | grep -q "$version"; then
        echo "installing $name $version into $TOOLS_DIR/$name (once; a few minutes)" >&2
        cargo install "$name" --locked --version "$version" --root "$TOOLS_DIR/$name" >&2 ||
            return 1
    fi
    printf '%s\n' "$binary"
}
