# Stub of pkgsrc's mk/bsd.pkg.mk, for the packaging tests: the variables and targets the
# package's install steps rely on.
PKGBASE=	${PKGNAME:C/-[^-]*$//}
PKGVERSION_NOREV=	${DISTNAME:C/^.*-//}
INSTALL_LIB=	install -m 755
INSTALL_DATA=	install -m 644

stub-install: stub-installation-dirs do-install
stub-installation-dirs:
.for d in ${INSTALLATION_DIRS}
	mkdir -p ${DESTDIR}${PREFIX}/${d}
.endfor
