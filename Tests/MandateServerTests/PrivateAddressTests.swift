import CMandateShim
import Glibc
import Testing

/// The destination guard of outbound fetches (did:web, OAuth): what `mandate_is_private_address`
/// says of the address curl is about to connect to.
@Suite struct PrivateAddressTests {
    func isPrivate(_ text: String) -> Bool {
        if text.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            #expect(inet_pton(AF_INET6, text, &a.sin6_addr) == 1, "\(text)")
            return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { mandate_is_private_address($0) == 1 } }
        }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        #expect(inet_pton(AF_INET, text, &a.sin_addr) == 1, "\(text)")
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { mandate_is_private_address($0) == 1 } }
    }

    @Test func refusesThisMachineAndPrivateNetworks() {
        for a in ["127.0.0.1", "127.255.255.254", "0.0.0.0", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                  "169.254.169.254", "100.64.0.1", "100.127.255.255", "192.0.0.8", "198.18.0.1", "198.19.255.255",
                  "224.0.0.1", "240.0.0.1", "255.255.255.255",
                  "::", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::10.0.0.1", "fc00::1", "fd12::1",
                  "fe80::1", "ff02::1", "2001:db8::1",
                  // IPv4-compatible, local-use NAT64, 6to4 around a private IPv4, site-local.
                  "::127.0.0.1", "::169.254.169.254", "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::1", "2002:a9fe:a9fe::", "fec0::1"] {
            #expect(isPrivate(a), "\(a)")
        }
    }

    @Test func allowsPublicAddresses() {
        for a in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "100.128.0.1", "198.20.0.1", "::ffff:1.1.1.1", "64:ff9b::8.8.8.8",
                  "2606:4700::1111", "2002:808:808::1"] {
            #expect(!isPrivate(a), "\(a)")
        }
    }
}
