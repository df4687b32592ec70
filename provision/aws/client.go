package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithylog "github.com/aws/smithy-go/logging"

	"github.com/hvctl/hvctl/provision"
)

// maxBackoff caps the SDK retryer's delay between attempts (the SDK's
// own default). Tests shorten it; the code path is the same.
var maxBackoff = 20 * time.Second

// attemptCost is what each attempt takes from the adaptive retryer's
// client-side token bucket, which (after throttling) refills at the rate
// EC2 accepted, from 0.5 calls per second up. Tests set it to 0 so that
// recovering from injected throttling takes milliseconds, not seconds.
var attemptCost = retry.DefaultRequestCost

// loadConfig builds the SDK configuration: the default credential chain
// (or static keys, or an assumed role), the region, and the adaptive
// retry mode, which retries throttling (RequestLimitExceeded) and 5xx
// with backoff and slows the client down while EC2 throttles it.
func loadConfig(ctx context.Context, s Settings) (aws.Config, error) {
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(s.Region),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewAdaptiveMode(func(o *retry.AdaptiveModeOptions) {
				o.RequestCost = attemptCost
				o.StandardOptions = append(o.StandardOptions, func(so *retry.StandardOptions) {
					so.MaxAttempts = s.MaxRetries + 1
					so.MaxBackoff = maxBackoff
					// EC2 sends capacity errors as 5xx, which the SDK
					// would retry in place; hvctl fails over instead.
					so.Retryables = append([]retry.IsErrorRetryable{noRetryCapacity}, so.Retryables...)
				})
			})
		}),
	}
	if s.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.Profile))
	}
	if len(s.SharedConfigFiles) > 0 {
		opts = append(opts, config.WithSharedConfigFiles(s.SharedConfigFiles))
	}
	if len(s.SharedCredentialsFiles) > 0 {
		opts = append(opts, config.WithSharedCredentialsFiles(s.SharedCredentialsFiles))
	}
	if s.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, s.SessionToken)))
	}
	// The SDK's own lines (its IMDS fallback warning, retries) go into
	// hvctl's log, never straight to stderr.
	opts = append(opts, config.WithLogger(sdkLogger{}), config.WithClientLogMode(aws.LogRetries))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("aws: load the SDK configuration: %w", err)
	}
	if s.AssumeRoleARN != "" {
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), s.AssumeRoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "hvctl" }))
	}
	return cfg, nil
}

// noRetryCapacity stops the SDK from retrying capacity errors.
var noRetryCapacity = retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
	if capacityCodes[errorCode(err)] {
		return aws.FalseTernary
	}
	return aws.UnknownTernary
})

// newClient makes the EC2 client, with the endpoint override when set.
func newClient(cfg aws.Config, s Settings) *ec2.Client {
	return ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	})
}

// Error codes EC2 returns, by what hvctl does about them.
var (
	// capacityCodes mean "no room for this request here": the elastic
	// daemon fails over to the next site.
	capacityCodes = map[string]bool{
		"InsufficientInstanceCapacity":         true,
		"InsufficientCapacity":                 true,
		"InsufficientHostCapacity":             true,
		"InsufficientReservedInstanceCapacity": true,
		"InsufficientAddressCapacity":          true,
		"InsufficientFreeAddressesInSubnet":    true,
		"Unsupported":                          true, // the instance type is not offered in this zone
		"SpotMaxPriceTooLow":                   true,
	}
	// transientCodes are retried by the engine after the SDK gave up.
	transientCodes = map[string]bool{
		"InternalError":          true,
		"InternalFailure":        true,
		"ServiceUnavailable":     true,
		"Unavailable":            true,
		"RequestTimeout":         true,
		"DependencyViolation":    true, // deleting while terminated instances release their interfaces
		"IncorrectInstanceState": true,
	}
)

// eventualOps are calls that name resources hvctl made moments before:
// EC2 is eventually consistent, so a *.NotFound from them is retried.
var eventualOps = map[string]bool{
	"CreateSubnet": true, "AttachInternetGateway": true, "CreateRouteTable": true, "CreateRoute": true,
	"AssociateRouteTable": true, "CreateSecurityGroup": true, "AuthorizeSecurityGroupIngress": true,
	"AssociateVpcCidrBlock": true, "AssociateAddress": true, "ModifyInstanceAttribute": true,
}

// quota describes an EC2 or VPC service quota.
type quota struct {
	Name    string // as Service Quotas names it
	Service string // service code: ec2 or vpc
	Code    string // quota code
}

// quotaCodes maps quota errors to the quota to raise.
var quotaCodes = map[string]quota{
	"InstanceLimitExceeded":              {"Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "ec2", "L-1216C47A"},
	"VcpuLimitExceeded":                  {"Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)", "ec2", "L-1216C47A"},
	"MaxSpotInstanceCountExceeded":       {"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "ec2", "L-34B43A08"},
	"AddressLimitExceeded":               {"EC2-VPC Elastic IPs", "ec2", "L-0263D0A3"},
	"VpcLimitExceeded":                   {"VPCs per Region", "vpc", "L-F678F1CE"},
	"InternetGatewayLimitExceeded":       {"Internet gateways per Region", "vpc", "L-A4707A72"},
	"SecurityGroupLimitExceeded":         {"VPC security groups per Region", "vpc", "L-E79EC296"},
	"RouteTableLimitExceeded":            {"Route tables per VPC", "vpc", "L-589F43AA"},
	"RouteLimitExceeded":                 {"Routes per route table", "vpc", "L-93826ACB"},
	"SubnetLimitExceeded":                {"Subnets per VPC", "vpc", "L-407747CB"},
	"RulesPerSecurityGroupLimitExceeded": {"Inbound or outbound rules per security group", "vpc", "L-0EA8095F"},
}

// QuotaError is an EC2 or VPC quota that stops hvctl: it names the quota
// and how to raise it.
type QuotaError struct {
	Op      string // the API call
	Code    string // EC2's error code
	Message string // EC2's message
	Quota   string // the Service Quotas name
	Service string // service code
	QuotaID string // quota code
	Region  string
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("aws: %s: quota exceeded: %s (%s: %s). Raise the quota %q in the Service Quotas console for %s, or run: aws service-quotas request-service-quota-increase --region %s --service-code %s --quota-code %s --desired-value N",
		e.Op, e.Code, e.Quota, e.Message, e.Quota, e.Region, e.Region, e.Service, e.QuotaID)
}

// APIError is an EC2 error that is neither capacity, quota nor
// transient: a bad image, a missing permission, ...
type APIError struct {
	Op        string
	Code      string
	Message   string
	RequestID string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("aws: %s: %s: %s", e.Op, e.Code, e.Message)
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	return s
}

// errorCode returns the EC2 error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// isNotFound reports whether err is one of EC2's *.NotFound codes (the
// resource is gone).
func isNotFound(err error) bool {
	c := errorCode(err)
	return strings.HasSuffix(c, ".NotFound") || strings.HasSuffix(c, "NotFound") ||
		c == "InvalidAllocationID.NotFound" || c == "InvalidAssociationID.NotFound"
}

// mapErr turns an SDK error into what the engine understands: a
// *provision.CapacityError, a *QuotaError, a *provision.RetryableError
// (throttling or a 5xx the SDK retryer gave up on), or an *APIError.
// Request parameters (user data, tags) never appear in it.
func (p *Provider) mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg := ae.ErrorCode(), ae.ErrorMessage()
		reqID := requestID(err)
		_, throttle := retry.DefaultThrottleErrorCodes[code]
		switch {
		case capacityCodes[code]:
			return &provision.CapacityError{Provider: "aws", Detail: fmt.Sprintf("%s in %s: %s: %s", op, p.where(), code, msg)}
		case quotaCodes[code] != (quota{}):
			q := quotaCodes[code]
			return &QuotaError{Op: op, Code: code, Message: msg, Quota: q.Name, Service: q.Service, QuotaID: q.Code, Region: p.settings.Region}
		case throttle || transientCodes[code] || (eventualOps[op] && isNotFound(err)):
			return &provision.RetryableError{Err: &APIError{Op: op, Code: code, Message: msg, RequestID: reqID}}
		}
		if code == "AuthFailure" || code == "UnauthorizedOperation" {
			msg += " (check the credentials hvctl uses and that they allow ec2:" + op + "; see docs/providers.md)"
		}
		if status := httpStatus(err); status >= 500 {
			return &provision.RetryableError{Err: &APIError{Op: op, Code: code, Message: msg, RequestID: reqID}}
		}
		return &APIError{Op: op, Code: code, Message: msg, RequestID: reqID}
	}
	var qe *ratelimit.QuotaExceededError
	if errors.As(err, &qe) || retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return &provision.RetryableError{Err: fmt.Errorf("aws: %s: %w", op, err)}
	}
	if status := httpStatus(err); status >= 500 {
		return &provision.RetryableError{Err: fmt.Errorf("aws: %s: %w", op, err)}
	}
	return fmt.Errorf("aws: %s: %w", op, err)
}

func (p *Provider) where() string {
	if p.settings.AvailabilityZone != "" {
		return p.settings.AvailabilityZone
	}
	return p.settings.Region
}

func requestID(err error) string {
	var re interface{ ServiceRequestID() string }
	if errors.As(err, &re) {
		return re.ServiceRequestID()
	}
	return ""
}

func httpStatus(err error) int {
	var he interface{ HTTPStatusCode() int }
	if errors.As(err, &he) {
		return he.HTTPStatusCode()
	}
	return 0
}

// sdkLogger writes the SDK's log lines as records of slog's default
// logger: warnings at warn, the rest at debug.
type sdkLogger struct{}

func (sdkLogger) Logf(c smithylog.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == smithylog.Warn {
		level = slog.LevelWarn
	}
	slog.Default().Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
}
