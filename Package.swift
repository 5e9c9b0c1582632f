// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Mandate",
    products: [
        .executable(name: "mandate", targets: ["mandate"]),
        .executable(name: "mandate-bench", targets: ["MandateBench"]),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .target(name: "CMandateShim", dependencies: ["COpenSSL", "CCurl"]),
        // Crypto, I/O and storage layers (and MandateRegistry, for SQLite): the only modules that import C.
        .target(name: "MandateCrypto", dependencies: ["CSodium", "COpenSSL", "CMandateShim"]),
        .target(name: "MandateHTTP"),
        // The pipeline: parse → prove possession → walk the chain → decide.
        .target(name: "MandateCore", dependencies: ["MandateCrypto", "MandateHTTP"]),
        // Event loops, connections, forwarding with libcurl, audit output.
        .target(name: "MandateServer", dependencies: ["MandateCore", "MandateHTTP", "MandateCrypto", "CMandateShim", "CCurl"]),
        // The agent registry: SQLite in state_dir, the view the verifier reads, the admin API.
        .target(name: "MandateRegistry", dependencies: ["CSQLite", "MandateCore", "MandateCrypto"]),
        // The load generator: epoll connections, minter threads, latency histograms.
        .target(name: "MandateLoad", dependencies: ["MandateCore", "MandateCrypto", "CMandateShim"]),
        .executableTarget(name: "mandate", dependencies: ["MandateServer", "MandateCore", "MandateCrypto", "MandateLoad", "MandateRegistry"]),
        .executableTarget(name: "MandateBench", dependencies: ["MandateCore", "MandateHTTP", "MandateCrypto"],
                          path: "Benchmarks/MandateBench"),
        .testTarget(name: "MandateCoreTests", dependencies: ["MandateCore", "MandateCrypto", "MandateHTTP"]),
        .testTarget(name: "MandateHTTPTests", dependencies: ["MandateHTTP"]),
        .testTarget(name: "MandateLoadTests", dependencies: ["MandateLoad", "MandateCore"]),
        .testTarget(name: "MandateRegistryTests", dependencies: ["MandateRegistry", "MandateCore"]),
        .testTarget(name: "MandateServerTests", dependencies: ["MandateServer", "MandateCore", "MandateHTTP"]),
    ]
)
