// Where the console's AWS credentials come from, and the vendor role's credentials obtained
// with them.
//
// Base credentials, in the order the AWS tools look for them (DefaultCredentialsChain):
//   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
//   2. a profile (AWS_PROFILE, else "default") in the shared credentials file
//      (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials) or the config file
//      (AWS_CONFIG_FILE, else ~/.aws/config, sections "[profile NAME]");
//   3. the instance role, from the instance metadata service with IMDSv2 (a session token from
//      PUT /latest/api/token, then /latest/meta-data/iam/security-credentials/<role>), unless
//      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides the address.
// A profile that names a role_arn, sso_* or credential_process is refused with a clear error
// (not supported), never silently skipped.
//
// The vendor role (AssumeRoleCredentials): STS AssumeRole with the role ARN, the external id
// the customer set in the role's trust policy and a session name, signed with the base
// credentials. The temporary credentials are kept and assumed again `refresh_margin` before
// they expire, or at once after a service said they expired (Invalidate()).
//
// Failures are CallErrors: "NoCredentials" when no place had any, "InvalidProfile" naming the
// file and line of a malformed credentials file, the STS error (AccessDenied with a hint about
// the trust policy and external id) when the role cannot be assumed.
//
// Thread-safety: every provider is safe to use from several threads; Get() refreshes under a
// lock, so concurrent callers wait for one refresh.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "connectors/cloud/aws/sigv4.h"
#include "connectors/cloud/call_result.h"
#include "connectors/cloud/http_client.h"

namespace sextant::cloud::aws {

class AwsClient;

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Credentials valid for at least the provider's refresh margin.
  virtual CallResult<Credentials> Get() = 0;
  // Forgets cached credentials: the next Get() fetches fresh ones.
  virtual void Invalidate() {}
  // Where the credentials come from, for messages ("environment", "profile prod", ...).
  virtual std::string Describe() const = 0;
};

class StaticCredentials final : public CredentialsProvider {
 public:
  explicit StaticCredentials(Credentials c) : credentials_(std::move(c)) {}
  CallResult<Credentials> Get() override { return credentials_; }
  std::string Describe() const override { return credentials_.source; }

 private:
  const Credentials credentials_;
};

// Looks up an environment variable (the process's by default; tests pass a map).
using Environment = std::function<std::optional<std::string>(const std::string&)>;
Environment ProcessEnvironment();
Environment MapEnvironment(std::map<std::string, std::string> vars);

// NoCredentials when the variables are absent; InvalidProfile when only one key is set.
CallResult<Credentials> CredentialsFromEnvironment(const Environment& env);

// An INI file as the AWS tools write it: "[section]", "key = value", comments with # or ;.
// An error names file:line.
Result<std::map<std::string, std::map<std::string, std::string>>> ParseIni(std::string_view text,
                                                                           const std::string& name);

// The profile from the credentials file, else from the config file ("[profile NAME]", or
// "[default]"). Missing files are not errors; a malformed one is.
CallResult<Credentials> CredentialsFromProfile(const std::filesystem::path& credentials_file,
                                               const std::filesystem::path& config_file,
                                               const std::string& profile);

using Clock = std::function<std::chrono::system_clock::time_point()>;

// The instance role's credentials through IMDSv2.
class InstanceMetadataCredentials final : public CredentialsProvider {
 public:
  InstanceMetadataCredentials(std::shared_ptr<HttpClient> http, std::string endpoint,
                              std::chrono::milliseconds timeout, Clock clock,
                              std::chrono::seconds refresh_margin = std::chrono::minutes(5));
  CallResult<Credentials> Get() override;
  void Invalidate() override;
  std::string Describe() const override { return "instance metadata (" + endpoint_ + ")"; }

 private:
  CallResult<Credentials> Fetch();

  const std::shared_ptr<HttpClient> http_;
  const std::string endpoint_;
  const std::chrono::milliseconds timeout_;
  const Clock clock_;
  const std::chrono::seconds margin_;
  std::mutex mu_;
  std::optional<Credentials> cached_;  // GUARDED_BY(mu_)
};

struct CredentialsChainOptions {
  Environment env = ProcessEnvironment();
  std::filesystem::path home;  // default: $HOME
  std::shared_ptr<HttpClient> http;
  std::chrono::milliseconds imds_timeout{1'000};
  Clock clock;  // default: system clock
};

// Environment, then profile, then instance metadata; the first that has credentials is used
// from then on (and named by Describe()).
class DefaultCredentialsChain final : public CredentialsProvider {
 public:
  explicit DefaultCredentialsChain(CredentialsChainOptions options);
  CallResult<Credentials> Get() override;
  void Invalidate() override;
  std::string Describe() const override;

 private:
  CredentialsChainOptions options_;
  mutable std::mutex mu_;
  std::unique_ptr<CredentialsProvider> chosen_;  // GUARDED_BY(mu_)
  std::string chosen_name_;                      // GUARDED_BY(mu_)
};

struct AssumeRoleOptions {
  std::string role_arn;
  std::string external_id;
  std::string session_name = "sextant-console";
  std::chrono::seconds duration = std::chrono::hours(1);
  std::chrono::seconds refresh_margin = std::chrono::minutes(5);
  std::string sts_region = "us-east-1";  // the regional STS endpoint to ask
};

// The vendor role's temporary credentials. `sts` signs with the base credentials.
class AssumeRoleCredentials final : public CredentialsProvider {
 public:
  AssumeRoleCredentials(std::shared_ptr<AwsClient> sts, AssumeRoleOptions options);
  CallResult<Credentials> Get() override;
  void Invalidate() override;
  std::string Describe() const override { return "role " + options_.role_arn; }
  // How many times the role was assumed (tests check refreshes with it).
  int assumptions() const;

 private:
  const std::shared_ptr<AwsClient> sts_;
  const AssumeRoleOptions options_;
  mutable std::mutex mu_;
  std::optional<Credentials> cached_;  // GUARDED_BY(mu_)
  int assumptions_ = 0;                // GUARDED_BY(mu_)
};

}  // namespace sextant::cloud::aws
