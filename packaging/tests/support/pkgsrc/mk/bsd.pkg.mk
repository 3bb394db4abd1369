# Stub of pkgsrc's mk/bsd.pkg.mk, for the packaging tests: the variables and targets the
# package's own steps rely on, and what pkginstall does with CONF_FILES. Run as
# `bmake -C <package directory> stub-install`, then `stub-conf-files`.
PKGBASE=	${PKGNAME:C/-[^-]*$//}
PKGVERSION_NOREV=	${DISTNAME:C/^.*-//}
FILESDIR?=	${.CURDIR}/files
PKG_SYSCONFBASE?=	${PREFIX}/etc
PKG_SYSCONFDIR?=	${PKG_SYSCONFBASE}${PKG_SYSCONFSUBDIR:D/${PKG_SYSCONFSUBDIR}}
CP?=	cp
INSTALL_LIB=	install -m 755
INSTALL_DATA=	install -m 644

# The steps of a build after the extraction this stub runs: post-extract, the SUBST framework
# (mk/subst.mk, its SUBST_VARS form: each @VAR@ in SUBST_FILES, relative to WRKSRC, becomes
# ${VAR}), INSTALLATION_DIRS and do-install.
stub-install: post-extract stub-subst stub-installation-dirs do-install

stub-subst:
.for c in ${SUBST_CLASSES}
.  for f in ${SUBST_FILES.${c}}
.    for v in ${SUBST_VARS.${c}}
	sed -e 's|@${v}@|${${v}}|g' ${WRKSRC}/${f} > ${WRKSRC}/${f}.subst
	mv ${WRKSRC}/${f}.subst ${WRKSRC}/${f}
.    endfor
.  endfor
.endfor

stub-installation-dirs:
.for d in ${INSTALLATION_DIRS}
	mkdir -p ${DESTDIR}${PREFIX}/${d}
.endfor

# What pkginstall does with CONF_FILES when the binary package is installed: each example is
# copied to its configuration file unless that file exists, which is then left as it is.
stub-conf-files:
.for eg conf in ${CONF_FILES}
	mkdir -p ${DESTDIR}${conf:H}
	[ -e ${DESTDIR}${conf} ] || cp ${DESTDIR}${eg} ${DESTDIR}${conf}
.endfor
