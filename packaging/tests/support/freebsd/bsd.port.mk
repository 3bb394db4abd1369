# Stub of FreeBSD's Mk/bsd.port.mk with USES=apache:2.4+ cargo, for the packaging tests: the
# variables and targets the port's install steps rely on, and how the framework computes the
# files it fetches. Run as `bmake -m <this directory> -C <port directory> ...`.

# USES=apache (Mk/Uses/apache.mk), Apache 2.4 chosen.
APACHEMODDIR=	libexec/apache24
APACHEETCDIR=	etc/apache24
APACHE_PKGNAMEPREFIX=	ap24-

# USES=cargo (Mk/Uses/cargo.mk), which bsd.port.mk includes before its own defaults below: it
# includes Makefile.crates and appends every crate to DISTFILES, with its own master site group.
.if ${USES:Mcargo}
.sinclude "${.CURDIR}/Makefile.crates"
CARGO_DIST_SUBDIR?=	rust/crates
.  for _crate in ${CARGO_CRATES}
DISTFILES+=	${CARGO_DIST_SUBDIR}/${_crate}.crate:_cargo
.  endfor
CARGO_TARGET_DIR?=	${WRKDIR}/target
CARGO_BUILD_TARGET?=	x86_64-unknown-freebsd
.endif

# bsd.port.mk's defaults: each applies only if neither the port nor a USES set it, so with
# USES=cargo the default DISTFILES never does.
DISTNAME?=	${PORTNAME}-${DISTVERSIONPREFIX:U}${DISTVERSION}${DISTVERSIONSUFFIX:U}
EXTRACT_SUFX?=	.tar.gz
DISTFILES?=	${DISTNAME}${EXTRACT_SUFX}
# What `make fetch` and `make checksum` handle (the distfiles without their :group).
ALLFILES=	${DISTFILES:C/:[^:\/]*$//}

PKGNAME=	${PKGNAMEPREFIX}${PORTNAME}-${DISTVERSION}
EXAMPLESDIR=	${PREFIX}/share/examples/${PORTNAME}
FILESDIR=	${.CURDIR}/files
MKDIR=	mkdir -p
INSTALL_LIB=	install -m 755
INSTALL_DATA=	install -m 644
SUB_LIST+=	PREFIX=${PREFIX} EXAMPLESDIR=${EXAMPLESDIR} APACHEMODDIR=${APACHEMODDIR} APACHEETCDIR=${APACHEETCDIR}
_SUB_SED=	${SUB_LIST:S/$/!g/:S/^/ -e s!%%/:S/=/%%!/}

# SUB_FILES: files/<f>.in, substituted with SUB_LIST, to ${WRKDIR}/<f>.
stub-sub-files:
	mkdir -p ${WRKDIR}
.for f in ${SUB_FILES}
	sed ${_SUB_SED} ${FILESDIR}/${f}.in > ${WRKDIR}/${f}
.endfor
