#include "connectors/console/rollout_channel.h"

#include <algorithm>
#include <string>
#include <thread>

#include "connectors/agent/agent_client.h"
#include "connectors/console/fleet_connector.h"

namespace sextant::rpc {
namespace {

using std::chrono::milliseconds;

console::DeploymentPayload FromProto(const v1::DeploymentSpecRef& s) {
  console::DeploymentPayload p;
  p.name = s.name();
  p.spec_json = s.spec_json();
  p.spec_digest = s.spec_digest();
  p.model_uri = s.model_uri();
  p.model_sha256 = s.model_sha256();
  return p;
}

class GrpcTargetChannel : public console::TargetChannel {
 public:
  GrpcTargetChannel(std::string name, std::unique_ptr<rpc::AgentClient> client,
                    milliseconds validation_deadline)
      : name_(std::move(name)),
        client_(std::move(client)),
        validation_deadline_(validation_deadline) {}

  std::string name() const override { return name_; }

  Result<std::optional<console::RemoteDeployment>> Get(const std::string& deployment) override {
    // A read is safe to repeat: the first call on a new channel may fail while many TLS
    // handshakes compete (a push opens one channel per target at once).
    auto got = client_->GetDeployment(deployment);
    for (int attempt = 0;
         attempt < 3 && !got.ok() && got.status().code() == StatusCode::kUnavailable; ++attempt) {
      std::this_thread::sleep_for(milliseconds(100 << attempt));
      got = client_->GetDeployment(deployment);
    }
    if (!got.ok()) {
      if (got.status().code() == StatusCode::kNotFound) {
        return std::optional<console::RemoteDeployment>();
      }
      return got.status();
    }
    console::RemoteDeployment d;
    d.spec = FromProto(got->spec());
    d.generation = got->generation();
    return std::optional<console::RemoteDeployment>(std::move(d));
  }

  Result<console::ApplyReply> Apply(const console::DeploymentPayload& p, int64_t if_generation,
                                    bool require_absent) override {
    v1::ApplyDeploymentRequest req;
    auto* s = req.mutable_spec();
    s->set_name(p.name);
    s->set_spec_json(p.spec_json);
    s->set_spec_digest(p.spec_digest);
    s->set_model_uri(p.model_uri);
    s->set_model_sha256(p.model_sha256);
    req.set_if_generation(if_generation);
    req.set_require_absent(require_absent);
    req.set_signed_report_json(p.signed_report_json);
    SEXTANT_ASSIGN_OR_RETURN(v1::ApplyDeploymentResponse resp, client_->ApplyDeployment(req));
    return console::ApplyReply{resp.generation(), resp.changed()};
  }

  Result<console::RemoteValidation> Validate(
      const std::string& deployment, int64_t generation,
      const std::vector<console::ExpectedOutput>& expected) override {
    v1::RunValidationRequest req;
    req.set_name(deployment);
    req.set_generation(generation);
    for (const auto& e : expected) {
      auto* out = req.add_expected();
      out->set_backend(e.backend);
      for (const auto& d : e.prompt_digests) out->add_prompt_output_digests(d);
    }
    SEXTANT_ASSIGN_OR_RETURN(v1::RunValidationResponse resp,
                             client_->RunValidation(req, validation_deadline_));
    console::RemoteValidation v;
    v.output_matches = resp.output_matches();
    v.compared_with_backend = resp.compared_with_backend();
    v.backend = resp.backend();
    v.device = resp.device();
    v.generation = resp.generation();
    v.model_sha256 = resp.model_sha256();
    std::vector<const v1::PromptResult*> prompts;
    for (const auto& p : resp.prompts()) prompts.push_back(&p);
    std::sort(prompts.begin(), prompts.end(),
              [](const auto* a, const auto* b) { return a->index() < b->index(); });
    // The agent does not say how many tokens each output had (that would tell its length):
    // the rate is the mean of the prompts' decode rates.
    double rate_sum = 0;
    int rates = 0;
    for (const auto* p : prompts) {
      v.prompt_matches.push_back(p->output_matches());
      v.worst_ttft_ms = std::max(v.worst_ttft_ms, p->ttft_ms());
      if (p->decode_tokens_per_second() > 0) {
        rate_sum += p->decode_tokens_per_second();
        ++rates;
      }
    }
    v.tokens_per_second = rates > 0 ? rate_sum / rates : 0;
    return v;
  }

  Status Delete(const std::string& deployment, int64_t if_generation) override {
    return client_->DeleteDeployment(deployment, if_generation).status();
  }

 private:
  std::string name_;
  std::unique_ptr<rpc::AgentClient> client_;
  milliseconds validation_deadline_;
};

}  // namespace

Result<std::shared_ptr<console::TargetChannel>> ConnectTargetChannel(
    const std::string& name, const rpc::AgentClientOptions& options,
    milliseconds validation_deadline) {
  SEXTANT_ASSIGN_OR_RETURN(auto client, rpc::AgentClient::Connect(options));
  return std::shared_ptr<console::TargetChannel>(
      std::make_shared<GrpcTargetChannel>(name, std::move(client), validation_deadline));
}

Result<std::shared_ptr<console::TargetChannel>> ConnectTargetChannel(
    const console::Target& target, milliseconds call_deadline, milliseconds validation_deadline) {
  SEXTANT_ASSIGN_OR_RETURN(auto options, ClientOptionsFor(target, call_deadline));
  return ConnectTargetChannel(target.name, options, validation_deadline);
}

}  // namespace sextant::rpc
