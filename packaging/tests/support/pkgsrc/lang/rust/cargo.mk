# Stub of pkgsrc's lang/rust/cargo.mk, for the packaging tests: the install steps need
# nothing from it.
