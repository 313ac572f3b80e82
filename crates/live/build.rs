//! With the `ebpf` feature: compiles `src/bpf/flows.bpf.c` with clang and
//! generates its Rust skeleton (the maps' key and value types come from the
//! program's BTF, so `src/bpf/flows.h` is their one definition).

fn main() {
    #[cfg(feature = "ebpf")]
    ebpf::build();
}

#[cfg(feature = "ebpf")]
mod ebpf {
    use std::path::PathBuf;

    pub fn build() {
        let source = "src/bpf/flows.bpf.c";
        println!("cargo:rerun-if-changed={source}");
        println!("cargo:rerun-if-changed=src/bpf/flows.h");
        let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
        if std::process::Command::new(&clang)
            .arg("--version")
            .output()
            .is_err()
        {
            panic!(
                "the `ebpf` feature compiles its TC program with clang, and `{clang}` is not \
                 installed: run `scripts/setup.sh build` (Debian: clang, libelf-dev, zlib1g-dev, \
                 pkg-config) or build without `--features ebpf`"
            );
        }
        // The kernel's uapi headers live in the multiarch include directory,
        // which clang does not search when targeting bpf.
        let arch = match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
            Ok("x86_64") => "x86_64-linux-gnu",
            Ok("aarch64") => "aarch64-linux-gnu",
            Ok(other) => panic!("no multiarch include directory known for {other}"),
            Err(_) => "x86_64-linux-gnu",
        };
        let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
        libbpf_cargo::SkeletonBuilder::new()
            .source(source)
            .clang(&clang)
            .clang_args([format!("-I/usr/include/{arch}"), "-Wall".into()])
            .build_and_generate(out.join("flows.skel.rs"))
            .unwrap_or_else(|e| panic!("building {source}: {e:#}"));
    }
}
