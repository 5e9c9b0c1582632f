import Testing
@testable import MandateCore

/// RFC 7515 §2 / RFC 4648 §5: unpadded base64url with one spelling per value.
@Suite struct Base64URLTests {
    @Test func decodesCanonicalUnpaddedInput() {
        #expect(Base64URL.decode("QQ".utf8) == [0x41])
        #expect(Base64URL.decode("QUI".utf8) == [0x41, 0x42])
        #expect(Base64URL.decode("QUJD".utf8) == [0x41, 0x42, 0x43])
        #expect(Base64URL.decode("-_8".utf8) == [0xfb, 0xff])
        #expect(Base64URL.decode("".utf8) == [])
    }

    @Test func roundTripsEveryLength() {
        for n in 0..<40 {
            let data = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64URL.encode(data)
            #expect(!text.contains("="))
            #expect(Base64URL.decode(text.utf8) == data)
        }
    }

    @Test func rejectsPadding() {
        #expect(Base64URL.decode("QQ==".utf8) == nil)
        #expect(Base64URL.decode("QUI=".utf8) == nil)
    }

    @Test func rejectsStandardAlphabetPlusAndSlash() {
        #expect(Base64URL.decode("+/8".utf8) == nil)
        #expect(Base64URL.decode("ab+c".utf8) == nil)
        #expect(Base64URL.decode("ab/c".utf8) == nil)
    }

    @Test func rejectsWhitespace() {
        #expect(Base64URL.decode("QU JD".utf8) == nil)
        #expect(Base64URL.decode("QUJD\n".utf8) == nil)
        #expect(Base64URL.decode(" QUJD".utf8) == nil)
        #expect(Base64URL.decode("QU\tJD".utf8) == nil)
    }

    @Test func rejectsNonZeroTrailingBits() {
        // "QQ" is 0x41; "QR".."QZ" spell the same byte with stray low bits.
        #expect(Base64URL.decode("QR".utf8) == nil)
        #expect(Base64URL.decode("QUJ".utf8) == nil)  // 0x41 0x42 with stray bits ("QUI" is canonical)
    }

    @Test func rejectsImpossibleLength() {
        #expect(Base64URL.decode("Q".utf8) == nil)
        #expect(Base64URL.decode("QUJDR".utf8) == nil)
    }

    @Test func rejectsNonASCIIBytes() {
        #expect(Base64URL.decode([0x51, 0xc3, 0xa9, 0x51]) == nil)
    }
}
