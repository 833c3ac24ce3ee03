//! Links the addon the way Node expects (napi-build sets the loader flags).

fn main() {
    napi_build::setup();
}
