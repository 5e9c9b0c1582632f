/// Routes by method and normalised path prefix; the longest matching prefix wins, then file order.
/// A request that matches no route is denied.
public struct RoutePolicy: Sendable {
    public typealias Route = ProxyConfig.Route
    let routes: [Route]

    public init(routes: [Route]) {
        // Stable sort: longest prefix first, ties keep their order in the file.
        self.routes = routes.enumerated().sorted {
            $0.element.prefix.utf8.count != $1.element.prefix.utf8.count
                ? $0.element.prefix.utf8.count > $1.element.prefix.utf8.count : $0.offset < $1.offset
        }.map(\.element)
    }

    public func match(method: String, path: String) -> Route? {
        for r in routes where path.utf8.starts(with: r.prefix.utf8) && (r.methods.isEmpty || r.methods.contains(method)) {
            return r
        }
        return nil
    }

    /// The decision for an identified caller; nil means allowed.
    public func decide(method: String, path: String, chain: VerifiedChain) -> (Route?, Denial?) {
        guard let route = match(method: method, path: path) else {
            return (nil, Denial(.accessDenied, "no route allows \(method) \(path)"))
        }
        if !route.principals.isEmpty && !route.principals.contains(chain.principal) {
            return (route, Denial(.accessDenied, "this route does not admit the principal"))
        }
        if !route.organizations.isEmpty && !route.organizations.contains(chain.organization ?? "") {
            return (route, Denial(.accessDenied, "this route does not admit the organization"))
        }
        if !route.agents.isEmpty && !route.agents.contains(chain.agent) {
            return (route, Denial(.accessDenied, "this route does not admit the agent"))
        }
        let missing = route.scopes.filter { !chain.scopes.contains($0) }
        if !missing.isEmpty {
            // RFC 6750 §3.1: name the scope needed.
            return (route, Denial(.insufficientScope, "the delegation lacks scope \(missing.joined(separator: " "))",
                                  requiredScope: route.scopes.joined(separator: " ")))
        }
        switch route.effect {
        case .allow: return (route, nil)
        case .deny: return (route, Denial(.accessDenied, "denied by policy"))
        case .approve: return (route, Denial(.approvalRequired, "this action needs the principal's approval"))
        }
    }
}
