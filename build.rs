//! Exposes the Ruby version being built against as cfgs (`ruby_gte_3_3`,
//! ...), from the `DEP_RB_*` variables rb-sys's build script exports, so the
//! version-specific object layout in `src/lower/ruby_layout.rs` is chosen at
//! compile time.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Without this cargo reruns the script (and rebuilds the crate) whenever
    // any file of the package changes; rb-sys's own DEP_RB_* inputs are
    // tracked through the dependency.
    println!("cargo:rerun-if-changed=build.rs");
    rb_sys_env::activate()?;
    Ok(())
}
