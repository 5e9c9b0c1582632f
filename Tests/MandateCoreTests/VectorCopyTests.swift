import Foundation
import Testing

/// Tests/vectors is a copy of ../shared/vectors for clones without it; it must not drift.
@Test func vendoredVectorsEqualSharedVectors() throws {
    guard FileManager.default.fileExists(atPath: Vectors.shared.path) else { return }
    for name in ["did", "dpop", "jose", "http-message-signatures", "wimse"] {
        let a = FileManager.default.contents(atPath: Vectors.shared.appendingPathComponent(name + ".json").path)
        let b = FileManager.default.contents(atPath: Vectors.copy.appendingPathComponent(name + ".json").path)
        #expect(a != nil && a == b, "Tests/vectors/\(name).json differs from ../shared/vectors; copy it again")
    }
}
