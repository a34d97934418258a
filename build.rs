//! Exposes the Ruby version being built against as cfgs (`ruby_gte_3_3`,
//! ...), from the `DEP_RB_*` variables rb-sys's build script exports, so the
//! version-specific object layout in `src/lower/ruby_layout.rs` is chosen at
//! compile time.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    rb_sys_env::activate()?;
    Ok(())
}
