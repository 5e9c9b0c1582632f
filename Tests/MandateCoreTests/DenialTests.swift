import Testing
@testable import MandateCore

/// A refusal renders itself: RFC 9449 §7.1 / RFC 6750 §3 challenge and a JSON body.
@Suite struct DenialTests {
    @Test func challengeHasErrorDescriptionAndAlgs() {
        let d = Denial(.invalidDPoPProof, "htu does not match the request URI")
        #expect(d.status == 401)
        #expect(d.wwwAuthenticate
                == #"DPoP error="invalid_dpop_proof", error_description="htu does not match the request URI", algs="EdDSA ES256""#)
    }

    @Test func invalidTokenChallengeNamesItsError() {
        let w = Denial(.invalidToken, "expired").wwwAuthenticate
        #expect(w?.hasPrefix(#"DPoP error="invalid_token""#) == true)
        #expect(w?.contains(#"error_description="expired""#) == true)
        #expect(w?.hasSuffix(#"algs="EdDSA ES256""#) == true)
    }

    @Test func insufficientScopeChallengeNamesScope() {
        let d = Denial(.insufficientScope, "lacks scope admin", requiredScope: "admin")
        #expect(d.status == 403)
        #expect(d.wwwAuthenticate
                == #"DPoP error="insufficient_scope", error_description="lacks scope admin", scope="admin", algs="EdDSA ES256""#)
    }

    @Test func challengeDescriptionCannotBreakQuoting() {
        let w = Denial(.invalidToken, "scope 'x\"y\\z'\r\n, error=\"forged\"").wwwAuthenticate ?? ""
        #expect(!w.contains("\r") && !w.contains("\n"))
        #expect(w.filter { $0 == "\"" }.count == 6)
    }

    @Test func policyDenialsHaveNoChallenge() {
        #expect(Denial(.accessDenied, "x").wwwAuthenticate == nil)
        #expect(Denial(.approvalRequired, "x").wwwAuthenticate == nil)
        #expect(Denial(.invalidRequest, "x").wwwAuthenticate == nil)
    }

    @Test func jsonBodyHasErrorDescriptionAndRequestID() throws {
        let body = Denial(.accessDenied, "no route allows \"GET\" /x\n").jsonBody(requestID: "r-42")
        #expect(body.last == 0x0a)
        let o = try StrictJSON.parseObject(body.dropLast()).get()
        #expect(o.names == ["error", "error_description", "request_id"])
        #expect(o["error"] == .string("access_denied"))
        #expect(o["error_description"] == .string("no route allows \"GET\" /x\n"))
        #expect(o["request_id"] == .string("r-42"))
    }

    @Test func statusFollowsCode() {
        #expect(Denial(.invalidRequest, "").status == 400)
        #expect(Denial(.invalidToken, "").status == 401)
        #expect(Denial(.accessDenied, "").status == 403)
        #expect(Denial(.approvalRequired, "").status == 403)
        #expect(Denial(.temporarilyUnavailable, "").status == 503)
        #expect(Denial(.badGateway, "", status: 599).status == 599)
    }
}

/// RFC 6750 §3.1: a request with no credential gets a challenge without an error code.
@Test func missingCredentialChallengeHasNoErrorCode() {
    let d = Denial(.missingCredential, "this resource needs Authorization: DPoP and a DPoP proof")
    #expect(d.status == 401)
    #expect(d.wwwAuthenticate == "DPoP algs=\"EdDSA ES256\"")
}

/// RFC 9728 §5.1 and RFC 9110 §11.6.1: each acceptable scheme's challenge names the metadata.
@Test func challengesListEachAcceptableScheme() {
    var d = Denial(.invalidDPoPProof, "stale", status: nil)
    d.resourceMetadata = "https://api.example/.well-known/oauth-protected-resource"
    #expect(d.challenges == [#"DPoP error="invalid_dpop_proof", error_description="stale", algs="EdDSA ES256", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#])
    d.acceptsBearer = true
    // RFC 6750 has no invalid_dpop_proof: the Bearer challenge carries only the metadata.
    #expect(d.challenges.last == #"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource""#)
    var s = Denial(.insufficientScope, "needs more", requiredScope: "a b")
    s.acceptsBearer = true
    #expect(s.challenges == [#"DPoP error="insufficient_scope", error_description="needs more", scope="a b", algs="EdDSA ES256""#,
                             #"Bearer error="insufficient_scope", error_description="needs more", scope="a b""#])
    #expect(Denial(.accessDenied, "no").challenges.isEmpty)
}
