//! The Debian policy rules (the packaging conventions reference, §4.1, §6.4) on the committed
//! cargo-deb metadata (Cargo.toml's [package.metadata.deb]), the .load file and the
//! maintainer scripts.

use std::process::Command;

use crate::common::*;

fn deb_meta() -> toml::Table {
    let c: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml parses");
    c["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

#[test]
fn debian_metadata_policy_fields() {
    let d = deb_meta();
    assert_eq!(
        d["name"].as_str(),
        Some("libapache2-mod-dtprovider"),
        "libapache2-mod-<name>"
    );
    assert_eq!(d["section"].as_str(), Some("httpd"));
    assert_eq!(
        d["depends"].as_str(),
        Some("$auto, apache2-api-20120211, apache2-bin (>= 2.4.16)")
    );
    let deps = d["depends"].as_str().unwrap();
    assert!(
        !deps.split(',').any(|x| x.trim() == "apache2"),
        "a module must not depend on apache2"
    );
    assert_eq!(
        d["maintainer-scripts"].as_str(),
        Some("debian/maintscripts/")
    );
    assert!(
        d.get("multiarch").is_none(),
        "multiarch would move the module out of usr/lib/apache2/modules"
    );
    let m = d["maintainer"].as_str().unwrap();
    assert!(
        m.contains('<') && m.ends_with('>'),
        "Maintainer is `Name <email>`"
    );
    let assets = d["assets"].as_array().unwrap();
    let find = |dest: &str| {
        assets
            .iter()
            .find(|a| a[1].as_str() == Some(dest))
            .unwrap_or_else(|| panic!("no asset {dest}"))
    };
    let module = find("usr/lib/apache2/modules/mod_dtprovider.so");
    assert_eq!(
        module[0].as_str(),
        Some("target/release/libmod_dtprovider.so"),
        "literal target/release/ prefix"
    );
    assert_eq!(module[2].as_str(), Some("644"), "stock modules are 0644");
    find("etc/apache2/mods-available/dtprovider.load");
    find("usr/lib/dtrace/httpd.d");
}

#[test]
fn debian_load_file_is_only_the_loadmodule_line() {
    assert_eq!(
        read("debian/dtprovider.load"),
        "LoadModule dtprovider_module /usr/lib/apache2/modules/mod_dtprovider.so\n"
    );
}

#[test]
fn debian_maintscripts_use_the_helper() {
    for (script, verb, guard) in [
        ("postinst", "enmod", None),
        (
            "prerm",
            "dismod",
            Some("[ \"$1\" = \"remove\" ] || [ \"$1\" = \"deconfigure\" ]"),
        ),
        ("postrm", "dismod", Some("[ \"$1\" = \"purge\" ]")),
    ] {
        let path = root().join("debian/maintscripts").join(script);
        let t = read(&format!("debian/maintscripts/{script}"));
        assert!(t.starts_with("#!/bin/sh\n"), "{script}: #!/bin/sh");
        assert!(t.contains("\nset -e\n"), "{script}: set -e");
        assert!(
            t.contains("if [ -e /usr/share/apache2/apache2-maintscript-helper ]; then\n"),
            "{script}: source the helper only if it exists"
        );
        assert!(
            t.contains(&format!("apache2_invoke {verb} dtprovider")),
            "{script}: apache2_invoke {verb}"
        );
        let code: String = t
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !code.contains("a2enmod") && !code.contains("a2dismod"),
            "{script}: never call a2enmod/a2dismod directly"
        );
        assert!(
            !code.contains("#DEBHELPER#"),
            "{script}: cargo-deb does not substitute #DEBHELPER#"
        );
        if let Some(g) = guard {
            assert!(t.contains(g), "{script}: runs only for {g}");
        }
        use std::os::unix::fs::PermissionsExt;
        assert!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o111 != 0,
            "{script} is executable"
        );
        run(Command::new("sh").arg("-n").arg(&path), "sh -n");
    }
}
