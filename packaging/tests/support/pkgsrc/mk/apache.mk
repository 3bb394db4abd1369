# Stub of pkgsrc's mk/apache.mk, for the packaging tests: apache24 chosen.
APACHE_PKG_PREFIX=	ap24
