/// The whole configuration, parsed once into an immutable value (see `ConfigParser`).
public struct ProxyConfig: Sendable {
    public struct Listen: Sendable, Equatable {
        public var host: String
        public var port: Int
        /// TLS termination on this address (`listen ADDR tls { … }`); nil for plain HTTP.
        public var tls: TLS?
        public init(host: String, port: Int, tls: TLS? = nil) { self.host = host; self.port = port; self.tls = tls }
    }

    /// `listen ADDR tls { certificate F; key F; client_ca F; verify_client off|optional|required; }`
    public struct TLS: Sendable, Equatable {
        /// nginx's `ssl_verify_client`: ask for a client certificate, and whether one is required.
        public enum ClientVerification: String, Sendable { case off, optional, required }
        /// PEM files, made absolute against the config file's folder.
        public var certificate: String
        public var key: String
        public var clientCA: String?
        public var verifyClient: ClientVerification
        /// `file:line` of the listen directive, for messages.
        public var origin: String
        public init(certificate: String, key: String, clientCA: String? = nil, verifyClient: ClientVerification = .off,
                    origin: String = "") {
            self.certificate = certificate; self.key = key; self.clientCA = clientCA; self.verifyClient = verifyClient
            self.origin = origin
        }
    }

    public struct Principal: Sendable, Equatable {
        public var did: String
        public var name: String
        /// Told (a JSON POST, ntfy- or Slack-style) when an approval waits for this principal.
        public var webhook: String?
        public init(did: String, name: String, webhook: String? = nil) { self.did = did; self.name = name; self.webhook = webhook }
    }

    /// `approval { listen ADDR; public_url URL; key F; expires_in D; interval D; }`: the built-in
    /// approval service (OpenID CIBA Core 1.0): its endpoints, its web page, and the key that
    /// signs receipts for decisions made on the page and its ID tokens.
    public struct Approval: Sendable, Equatable {
        /// Where the CIBA endpoints and the approval page are served; nil with `ciba_provider`.
        public var listen: Listen?
        /// How people and CIBA clients reach it (links in webhooks; the ID tokens' iss).
        public var publicURL: String
        /// Private JWK (`mandate keygen`).
        public var key: String?
        /// How long a person has to answer (CIBA expires_in).
        public var expiresIn: Double = 300
        /// CIBA polling interval (seconds between token requests).
        public var interval: Double = 5
        public init(listen: Listen?, publicURL: String, key: String?) { self.listen = listen; self.publicURL = publicURL; self.key = key }
    }

    /// `ciba_client ID { secret_file F; delivery poll|ping; notification_endpoint URL; }`: a client
    /// of the built-in approval service (client_secret_basic; CIBA §4 modes).
    public struct CIBAClient: Sendable, Equatable {
        public enum Delivery: String, Sendable { case poll, ping }
        public var id: String
        public var secretFile: String
        public var delivery: Delivery = .poll
        /// Ping mode: where the service POSTs {auth_req_id} (CIBA §10.2).
        public var notificationEndpoint: String?
        public init(id: String, secretFile: String) { self.id = id; self.secretFile = secretFile }
    }

    /// `ciba_provider ISSUER { backchannel_endpoint URL; token_endpoint URL; client_id ID;
    /// client_secret_file F; ca F; allow_private_addresses on; timeout D; }`: an external CIBA
    /// provider asks the people instead of the built-in service; the proxy is its client (poll mode).
    public struct CIBAProvider: Sendable, Equatable {
        public var issuer: String
        public var backchannelEndpoint: String
        public var tokenEndpoint: String
        public var clientID: String
        public var clientSecretFile: String
        public var fetch = FetchSettings()
        public init(issuer: String, backchannelEndpoint: String, tokenEndpoint: String, clientID: String, clientSecretFile: String) {
            self.issuer = issuer; self.backchannelEndpoint = backchannelEndpoint; self.tokenEndpoint = tokenEndpoint
            self.clientID = clientID; self.clientSecretFile = clientSecretFile
        }
    }

    /// A partner organisation whose key issues root delegations for its own people
    /// (`organization DID { name …; principals PATTERN…; max_scope SCOPE…; }`).
    public struct Organization: Sendable, Equatable {
        public var did: String
        public var name: String
        /// Principal identifiers it may assert: exact, `*@domain`, or `*`.
        public var principals: [String]
        /// Every scope of its root delegations must be one of these.
        public var maxScope: [String]
        public init(did: String, name: String, principals: [String], maxScope: [String]) {
            self.did = did; self.name = name; self.principals = principals; self.maxScope = maxScope
        }

        public func admits(principal id: String) -> Bool {
            principals.contains { p in
                if p == "*" { return true }
                guard p.hasPrefix("*@") else { return sameBytes(p, id) }
                // `*@domain`: one local part, without '@', then the domain (byte for byte), so
                // mallory@bank.example@partner.example is not one of partner.example's people.
                let domain = p.utf8.dropFirst(), u = id.utf8
                guard u.count > domain.count, u.suffix(domain.count).elementsEqual(domain) else { return false }
                return !u.dropLast(domain.count).contains(UInt8(ascii: "@"))
            }
        }
    }

    /// `oauth_issuer URL { … }`: an authorization server whose JWT access tokens (RFC 9068) are accepted.
    public struct OAuthIssuer: Sendable, Equatable {
        public var issuer: String
        /// Required in `aud`; nil: the proxy's audience.
        public var audience: String?
        /// nil: from the issuer's metadata (RFC 8414, else OpenID Connect Discovery).
        public var jwksURI: String?
        public var fetch = FetchSettings()
        public var keys = IssuerKeys.Settings()
        /// RFC 8693 act nesting allowed.
        public var maxActDepth = 4
        /// RFC 7662 introspection of opaque tokens (at most one issuer has it).
        public var introspection: Introspection?
        public init(issuer: String) { self.issuer = issuer }
    }

    public struct Introspection: Sendable, Equatable {
        public var endpoint: String
        public var clientID: String
        public var clientSecret: String
        /// Longest an active answer is reused (never past the token's exp).
        public var cache: Double = 60
        public init(endpoint: String, clientID: String, clientSecret: String) {
            self.endpoint = endpoint; self.clientID = clientID; self.clientSecret = clientSecret
        }
    }

    /// `txn_token { keys F…; trust_domain D; workload W; ttl 60s; }`: a signed Txn-Token per forwarded request.
    public struct TxnToken: Sendable, Equatable {
        /// Private JWK files (`mandate keygen`); the first signs, all are published.
        public var keyFiles: [String]
        public var trustDomain: String
        public var workload = "mandate"
        public var ttl: Double = 60
        public init(keyFiles: [String], trustDomain: String) { self.keyFiles = keyFiles; self.trustDomain = trustDomain }
    }

    /// `audit { file F; key F; checkpoint_every N; max_size S; }`: the hash-chained audit trail.
    public struct Audit: Sendable, Equatable {
        public var file: String
        /// Private JWK (`mandate keygen`) that signs checkpoints.
        public var key: String
        public var checkpointEvery = 1000
        public var maxSize = 100 << 20
        public init(file: String, key: String) { self.file = file; self.key = key }
    }

    public enum Effect: String, Sendable { case allow, deny, approve }

    public struct Route: Sendable, Equatable {
        /// Normalised path prefix (plain byte prefix, as nginx's prefix locations).
        public var prefix: String
        /// Empty means any method.
        public var methods: [String]
        /// Every one is required.
        public var scopes: [String]
        public var effect: Effect
        /// Empty means any enrolled principal / any agent.
        public var principals: [String]
        public var agents: [String]
        /// Empty means any (or no) organisation; else only chains rooted at one of these.
        public var organizations: [String] = []
        /// OAuth access tokens that are not sender-constrained (plain Bearer) are accepted here.
        public var allowBearer = false
        /// `effect approve`: how long the agent's request is held for the answer (nil: approval_wait).
        public var approvalWait: Double?
        /// `file:line` of the block, for logs.
        public var origin: String
        public init(prefix: String, methods: [String] = [], scopes: [String] = [], effect: Effect,
                    principals: [String] = [], agents: [String] = [], organizations: [String] = [], origin: String = "") {
            self.prefix = prefix; self.methods = methods; self.scopes = scopes; self.effect = effect
            self.principals = principals; self.agents = agents; self.organizations = organizations; self.origin = origin
        }
    }

    /// How documents are fetched from the network (did:web documents, OAuth metadata and JWKS).
    public struct FetchSettings: Sendable, Equatable {
        /// CA bundle for the servers' certificates; nil: the system's.
        public var caFile: String?
        /// Loopback, private and link-local addresses may be fetched from (tests, labs).
        public var allowPrivateAddresses = false
        public var timeout: Double = 5
        public var maxSize = 64 << 10
        public init(caFile: String? = nil, allowPrivateAddresses: Bool = false, timeout: Double = 5, maxSize: Int = 64 << 10) {
            self.caFile = caFile; self.allowPrivateAddresses = allowPrivateAddresses; self.timeout = timeout; self.maxSize = maxSize
        }
    }

    /// `did_web { … }`: fetching did:web documents (absent: did:web does not resolve).
    public struct DIDWebSettings: Sendable, Equatable {
        /// CA bundle for the document servers' certificates; nil: the system's.
        public var caFile: String?
        /// Loopback, private and link-local addresses may be fetched from (tests, labs).
        public var allowPrivateAddresses = false
        public var timeout: Double = 5
        public var maxSize = 64 << 10
        public var cache = DIDWebResolver.Settings()
        public init() {}
        public var fetch: FetchSettings {
            FetchSettings(caFile: caFile, allowPrivateAddresses: allowPrivateAddresses, timeout: timeout, maxSize: maxSize)
        }
    }

    public var listen: [Listen] = [Listen(host: "127.0.0.1", port: 8080)]
    public var didWeb: DIDWebSettings?
    /// Event loops; 0 means one per core.
    public var workers: Int = 0
    /// Scheme, host and optional port that agents address (DPoP `htu` is checked against it).
    public var publicOrigin: String = "http://127.0.0.1:8080"
    /// Required in `aud` when a delegation carries one; defaults to `publicOrigin`.
    public var audience: String? = nil
    public var upstream: String = "http://127.0.0.1:9000"
    public var principals: [Principal] = []
    public var organizations: [Organization] = []
    public var oauthIssuers: [OAuthIssuer] = []
    public var txnToken: TxnToken?
    public var audit: Audit?
    /// `state_dir DIR;`: the registry (registry.db, SQLite) lives here; none when absent.
    public var stateDir: String?
    public var approval: Approval?
    public var cibaClients: [CIBAClient] = []
    public var cibaProvider: CIBAProvider?
    /// `approval_wait D;`: how long a request that needs approval is held before 403 approval_pending.
    public var approvalWait: Double = 30
    /// `admin_listen ADDR;`: the admin listener (JWKS, health); none when absent.
    public var adminListen: Listen?
    /// `admin_token_file F;`: the bearer token the admin listener's private paths need.
    public var adminTokenFile: String?
    public var routes: [Route] = []

    // Chain rules
    public var maxChainLength: Int = 5
    public var clockSkew: Int64 = 30
    public var maxDelegationLifetime: Int64 = 24 * 3600
    // DPoP (RFC 9449 §11.1)
    public var dpopMaxAge: Int64 = 60
    public var dpopFutureSkew: Int64 = 5
    public var replayCacheSize: Int = 1 << 20
    public var chainCacheSize: Int = 10_000

    // HTTP limits and timeouts (seconds)
    public var clientMaxBodySize: Int = 10 << 20
    /// Room for a full chain: five 8 KB tokens in Authorization and Agent-Delegation.
    public var maxHeaderBytes: Int = 64 << 10
    public var maxHeaderCount: Int = 100
    public var maxURILength: Int = 8 << 10
    public var headerTimeout: Double = 10
    public var idleTimeout: Double = 60
    public var upstreamConnectTimeout: Double = 5
    public var upstreamTimeout: Double = 60
    /// Peers whose X-Forwarded-* headers are believed (addresses or CIDR blocks).
    public var trustedProxies: [String] = []
    /// "stdout", "off", or a file path.
    public var accessLog: String = "stdout"

    public init() {}

    public var effectiveAudience: String { audience ?? publicOrigin }
}
