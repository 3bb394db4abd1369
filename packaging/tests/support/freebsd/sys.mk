# Stub of FreeBSD's sys.mk: no system rules are needed.
