import Testing
@testable import MandateCore
import MandateHTTP

/// RFC 3986 §6.2.2 on the request path, with the refusals that keep policy and upstream in agreement.
@Suite struct PathNormalizationTests {
    func policy(_ p: String) -> Result<String, PathNormalizer.Refusal> { PathNormalizer.normalize(p.utf8, .policy) }

    @Test func removesDotSegments() {
        #expect(policy("/a/./b/../c") == .success("/a/c"))
        #expect(policy("/a/b/..") == .success("/a/"))
        #expect(policy("/a/.") == .success("/a/"))
        #expect(policy("/./a") == .success("/a"))
    }

    @Test func decodesUnreservedPercentEncodings() {
        #expect(policy("/%7Euser/%41%62%2D%5f%2E") == .success("/~user/Ab-_."))
    }

    @Test func upperCasesOtherPercentEncodings() {
        #expect(policy("/a%3ab%20c") == .success("/a%3Ab%20c"))
    }

    @Test func mergesSlashes() {
        #expect(policy("//a///b/") == .success("/a/b/"))
        #expect(PathNormalizer.normalize("//a".utf8, .rfc3986) == .success("//a"))
    }

    @Test func emptyPathIsRoot() {
        #expect(policy("") == .success("/"))
    }

    @Test func rejectsEncodedSlash() {
        #expect(policy("/a%2Fb") == .failure(.encodedSlash))
        #expect(policy("/a%2fb") == .failure(.encodedSlash))
    }

    @Test func rejectsEncodedBackslash() {
        #expect(policy("/a%5Cb") == .failure(.encodedSlash))
        #expect(policy("/a%5cb") == .failure(.encodedSlash))
    }

    @Test func rejectsEncodedDotSegments() {
        #expect(policy("/a/%2e%2e/b") == .failure(.encodedDotSegment))
        #expect(policy("/a/%2E%2E/b") == .failure(.encodedDotSegment))
        #expect(policy("/a/.%2e/b") == .failure(.encodedDotSegment))
        #expect(policy("/a/%2e/b") == .failure(.encodedDotSegment))
        #expect(policy("/a/%2e%2e") == .failure(.encodedDotSegment))
    }

    @Test func acceptsEncodedDotsInsideNames() {
        #expect(policy("/a/%2e%2ehidden") == .success("/a/..hidden"))
    }

    @Test func rejectsBackslash() {
        #expect(policy("/a\\..\\b") == .failure(.backslash))
    }

    @Test func rejectsRawNUL() {
        #expect(policy("/a\u{0}b") == .failure(.nul))
    }

    @Test func rejectsEncodedNUL() {
        #expect(policy("/a%00b") == .failure(.nul))
    }

    @Test func rejectsPathAboveRoot() {
        #expect(policy("/..") == .failure(.aboveRoot))
        #expect(policy("/a/../../b") == .failure(.aboveRoot))
    }

    @Test func rejectsInvalidPercentEncoding() {
        #expect(policy("/a%2") == .failure(.invalidPercentEncoding))
        #expect(policy("/a%zz") == .failure(.invalidPercentEncoding))
    }

    @Test func rejectsRelativePath() {
        #expect(policy("a/b") == .failure(.notAbsolute))
    }

    @Test(arguments: ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a/%2e%2e/b", "/a\\b", "/a\u{0}b", "/a%00b", "/..", "/a/../.."])
    func pipelineRefusesPathWithInvalidRequest(_ path: String) throws {
        let c = Chain([.edDSA])
        let v = try Verifier(config: config(principals: [c.principal]))
        let h = head("GET", path, leaf: c.leaf, proof: proof(c.proofKey, "GET", path, for: c.leaf))
        let d = v.verify(h, now: now).denial
        #expect(d?.code == .invalidRequest)
        #expect(d?.status == 400)
    }
}
