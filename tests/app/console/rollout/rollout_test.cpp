// The rollout orchestration against in-memory targets that behave like agents (durable
// generations, idempotent applies by digest, optimistic concurrency, refusals), with faults
// injected: refusals, output mismatches, lost replies, unreachable targets.
#include "app/console/rollout/rollout.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

namespace sextant::console {
namespace {

const std::string kNewDigest = "sha256:" + std::string(64, 'b');
const std::string kOldDigest = "sha256:" + std::string(64, 'a');
const std::string kGoodOutput = std::string(64, '1');
const std::string kModelSha = std::string(64, 'c');

DeploymentPayload Payload(const std::string& digest, const std::string& report = "report") {
  DeploymentPayload p;
  p.name = "chat";
  p.spec_json = "{\"digest\":\"" + digest + "\"}";
  p.spec_digest = digest;
  p.model_uri = "file://m.gguf";
  p.model_sha256 = kModelSha;
  p.signed_report_json = report;
  return p;
}

// Applies the agent's rules: a durable generation per change, same digest = no change,
// if_generation / require_absent checks.
class MemoryTarget : public TargetChannel {
 public:
  explicit MemoryTarget(std::string name) : name_(std::move(name)) {}
  std::string name() const override { return name_; }

  Result<std::optional<RemoteDeployment>> Get(const std::string& deployment) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return Status::Unavailable(name_ + " is down");
    auto it = deps_.find(deployment);
    if (it == deps_.end()) return std::optional<RemoteDeployment>();
    return std::optional<RemoteDeployment>(it->second);
  }

  Result<ApplyReply> Apply(const DeploymentPayload& p, int64_t if_generation,
                           bool require_absent) override {
    int active = ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_.load(), active);
    {
      std::lock_guard<std::mutex> lock(order_mu_);
      fleet_max_in_flight_ = std::max(fleet_max_in_flight_.load(), ++fleet_in_flight_);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    --fleet_in_flight_;
    --in_flight_;
    Record("apply " + name_);
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return Status::Unavailable(name_ + " is down");
    if (!refuse_.empty()) return Status::FailedPrecondition(refuse_);
    if (require_report_ && p.signed_report_json.empty()) {
      return Status::PermissionDenied("no signed report");
    }
    auto it = deps_.find(p.name);
    if (require_absent && it != deps_.end()) return Status::FailedPrecondition("exists");
    if (if_generation != 0 && (it == deps_.end() || it->second.generation != if_generation)) {
      return Status::FailedPrecondition("generation moved");
    }
    if (it != deps_.end() && BareDigest(it->second.spec.spec_digest) == BareDigest(p.spec_digest)) {
      return ApplyReply{it->second.generation, false};
    }
    RemoteDeployment d;
    d.spec = p;
    d.spec.signed_report_json.clear();
    d.generation = ++generation_counter_;
    deps_[p.name] = d;
    ++applies_[BareDigest(p.spec_digest)];
    reports_seen_.push_back(p.signed_report_json);
    if (lose_reply_) {  // once
      lose_reply_ = false;
      down_ = go_down_after_lost_reply_;
      return Status::Unavailable("connection reset");
    }
    return ApplyReply{d.generation, true};
  }

  // As an agent answers: its own outputs (output_, prompt_digests_) compared with the expected
  // set of its backend (else the first), match bits only.
  Result<RemoteValidation> Validate(const std::string& deployment, int64_t generation,
                                    const std::vector<ExpectedOutput>& expected) override {
    Record("validate " + name_);
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return Status::Unavailable(name_ + " is down");
    auto it = deps_.find(deployment);
    if (it == deps_.end()) return Status::NotFound("no deployment");
    if (generation != it->second.generation) return Status::FailedPrecondition("generation");
    if (expected.empty()) return Status::InvalidArgument("expected");
    return AnswerAsAgent(backend_, prompt_digests_, expected, generation);
  }

  static RemoteValidation AnswerAsAgent(const std::string& backend,
                                        const std::vector<std::string>& own,
                                        const std::vector<ExpectedOutput>& expected,
                                        int64_t generation) {
    const ExpectedOutput* e = &expected.front();
    for (const auto& x : expected) {
      if (x.backend == backend) e = &x;
    }
    RemoteValidation v;
    v.backend = backend;
    v.device = "test device";
    v.generation = generation;
    v.compared_with_backend = e->backend;
    size_t matching = 0;
    for (size_t k = 0; k < own.size(); ++k) {
      const bool m =
          k < e->prompt_digests.size() && BareDigest(e->prompt_digests[k]) == BareDigest(own[k]);
      v.prompt_matches.push_back(m);
      matching += m ? 1 : 0;
    }
    v.output_matches =
        !own.empty() && matching == own.size() && own.size() == e->prompt_digests.size();
    return v;
  }

  Status Delete(const std::string& deployment, int64_t if_generation) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (down_) return Status::Unavailable(name_ + " is down");
    auto it = deps_.find(deployment);
    if (it == deps_.end()) return Status::NotFound("no deployment");
    if (if_generation != 0 && it->second.generation != if_generation) {
      return Status::FailedPrecondition("generation moved");
    }
    deps_.erase(it);
    ++deletes_;
    return Status();
  }

  // Test controls and observations.
  void Seed(const std::string& digest) {
    std::lock_guard<std::mutex> lock(mu_);
    RemoteDeployment d;
    d.spec = Payload(digest, "");
    d.generation = ++generation_counter_;
    deps_["chat"] = d;
  }
  std::optional<RemoteDeployment> Current() {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = deps_.find("chat");
    if (it == deps_.end()) return std::nullopt;
    return it->second;
  }
  int Applies(const std::string& digest) {
    std::lock_guard<std::mutex> lock(mu_);
    return applies_[BareDigest(digest)];
  }
  void SetDown(bool down) {
    std::lock_guard<std::mutex> lock(mu_);
    down_ = down;
  }

  std::string refuse_;
  bool require_report_ = false;
  bool lose_reply_ = false;
  bool go_down_after_lost_reply_ = false;
  std::string backend_ = "cpu";
  std::string output_ = kGoodOutput;
  std::vector<std::string> prompt_digests_{std::string(64, 'd'), std::string(64, 'e')};
  std::atomic<int> max_in_flight_{0};
  std::atomic<int> in_flight_{0};
  std::vector<std::string> reports_seen_;
  int deletes_ = 0;
  static inline std::atomic<int> fleet_in_flight_{0};
  static inline std::atomic<int> fleet_max_in_flight_{0};
  static std::vector<std::string> order_;  // every target's calls, in order
  static std::mutex order_mu_;
  static void Record(const std::string& call) {
    std::lock_guard<std::mutex> lock(order_mu_);
    order_.push_back(call);
  }

 private:
  std::string name_;
  std::mutex mu_;
  bool down_ = false;
  int64_t generation_counter_ = 0;
  std::map<std::string, RemoteDeployment> deps_;
  std::map<std::string, int> applies_;
};
std::vector<std::string> MemoryTarget::order_;
std::mutex MemoryTarget::order_mu_;

class RolloutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MemoryTarget::order_.clear();
    MemoryTarget::fleet_max_in_flight_ = 0;
  }

  void MakeTargets(int n) {
    for (int i = 0; i < n; ++i) {
      targets_.push_back(std::make_shared<MemoryTarget>("t" + std::to_string(i)));
    }
  }
  PushPlan Plan() {
    PushPlan plan;
    plan.deployment = Payload(kNewDigest);
    ExpectedOutput e;
    e.backend = "cpu";
    e.output_digest = kGoodOutput;
    e.prompt_digests = {std::string(64, 'd'), std::string(64, 'e')};
    plan.expected = {e};
    for (auto& t : targets_) plan.targets.push_back(t);
    plan.report_for = [](const std::string& digest) { return "report of " + BareDigest(digest); };
    plan.journal = [this](const TargetRecord& r) {
      std::lock_guard<std::mutex> lock(journal_mu_);
      journal_[r.target] = r;
      return Status();
    };
    return plan;
  }
  PushOptions Options(int max_unavailable = 1) {
    PushOptions o;
    o.max_unavailable = max_unavailable;
    o.on_event = [this](const PushEvent& e) {
      events_.push_back(e.target + " " + std::string(TargetStateName(e.state)));
    };
    return o;
  }
  const TargetOutcome& Outcome(const PushResult& r, const std::string& name) {
    for (const auto& t : r.targets) {
      if (t.target == name) return t;
    }
    static TargetOutcome none;
    ADD_FAILURE() << "no outcome for " << name;
    return none;
  }
  std::vector<TargetRecord> Records() {
    std::vector<TargetRecord> out;
    for (auto& [name, r] : journal_) out.push_back(r);
    return out;
  }

  std::vector<std::shared_ptr<MemoryTarget>> targets_;
  std::vector<std::string> events_;
  std::mutex journal_mu_;
  std::map<std::string, TargetRecord> journal_;
};

TEST_F(RolloutTest, PushesToEveryTargetCanaryFirstThenWaves) {
  MakeTargets(5);
  targets_[1]->Seed(kOldDigest);
  auto opts = Options(2);
  opts.canary = "t3";
  auto r = Push(Plan(), opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok) << r->stopped_because;
  EXPECT_FALSE(r->no_op);
  for (auto& t : targets_) {
    const auto& o = Outcome(*r, t->name());
    EXPECT_EQ(o.state, TargetState::kDone) << t->name() << ": " << o.error;
    EXPECT_EQ(o.output_digest, kGoodOutput);
    EXPECT_EQ(o.comparison, "exact (cpu): match");
    ASSERT_TRUE(t->Current());
    EXPECT_EQ(t->Current()->spec.spec_digest, kNewDigest);
    EXPECT_EQ(o.generation, t->Current()->generation);
    EXPECT_EQ(t->Applies(kNewDigest), 1);
    EXPECT_EQ(t->reports_seen_, std::vector<std::string>{"report"});  // the report travels
    EXPECT_LE(t->max_in_flight_.load(), 1);
  }
  EXPECT_EQ(Outcome(*r, "t1").previous_generation, 1);
  EXPECT_EQ(Outcome(*r, "t1").generation, 2);
  EXPECT_EQ(Outcome(*r, "t0").previous_generation, 0);
  // The canary is applied and validated before anything else is applied.
  ASSERT_GE(MemoryTarget::order_.size(), 3u);
  EXPECT_EQ(MemoryTarget::order_[0], "apply t3");
  EXPECT_EQ(MemoryTarget::order_[1], "validate t3");
  // Waves of at most max_unavailable: the first wave after the canary is t0 and t1.
  auto pos = [&](const std::string& s) {
    return std::find(MemoryTarget::order_.begin(), MemoryTarget::order_.end(), s) -
           MemoryTarget::order_.begin();
  };
  EXPECT_LT(pos("validate t0"), pos("apply t2"));
  EXPECT_LT(pos("validate t1"), pos("apply t2"));
  EXPECT_LT(pos("validate t0"), pos("apply t4"));
  EXPECT_LT(pos("validate t1"), pos("apply t4"));
  // Never more than max_unavailable applies at once across the fleet.
  EXPECT_LE(MemoryTarget::fleet_max_in_flight_.load(), 2);
  EXPECT_GE(MemoryTarget::fleet_max_in_flight_.load(), 1);
  EXPECT_EQ(events_.front(), "t3 applying");
}

TEST_F(RolloutTest, PushingTheSameDigestAgainIsANoOp) {
  MakeTargets(3);
  ASSERT_TRUE(Push(Plan(), Options())->ok);
  events_.clear();
  auto again = Push(Plan(), Options());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->ok);
  EXPECT_TRUE(again->no_op);
  for (auto& t : targets_) {
    EXPECT_EQ(t->Applies(kNewDigest), 1) << t->name();
    EXPECT_EQ(t->Current()->generation, 1);
    EXPECT_EQ(Outcome(*again, t->name()).state, TargetState::kUnchanged);
  }
  // No apply and no validation ran.
  EXPECT_EQ(std::count_if(MemoryTarget::order_.begin(), MemoryTarget::order_.end(),
                          [](const std::string& s) { return s.rfind("validate", 0) == 0; }),
            3);
}

TEST_F(RolloutTest, ARefusalStopsTheRolloutAndRollsBackWhatChanged) {
  MakeTargets(5);
  targets_[1]->Seed(kOldDigest);
  targets_[3]->refuse_ = "model sha256 mismatch: store has x, spec wants y";
  auto r = Push(Plan(), Options(1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_NE(r->stopped_because.find("t3 refused"), std::string::npos) << r->stopped_because;
  // t0 was absent before: deleted again. t1 had the old spec: it runs it again, re-applied with
  // the old spec's report.
  EXPECT_EQ(Outcome(*r, "t0").state, TargetState::kRolledBack);
  EXPECT_FALSE(targets_[0]->Current());
  EXPECT_EQ(Outcome(*r, "t1").state, TargetState::kRolledBack);
  ASSERT_TRUE(targets_[1]->Current());
  EXPECT_EQ(targets_[1]->Current()->spec.spec_digest, kOldDigest);
  EXPECT_EQ(targets_[1]->Current()->generation, 3);
  EXPECT_EQ(Outcome(*r, "t1").generation, 3);
  EXPECT_EQ(targets_[1]->reports_seen_.back(), "report of " + BareDigest(kOldDigest));
  EXPECT_EQ(Outcome(*r, "t2").state, TargetState::kRolledBack);
  EXPECT_EQ(Outcome(*r, "t3").state, TargetState::kRefused);
  EXPECT_NE(Outcome(*r, "t3").error.find("model sha256 mismatch"), std::string::npos);
  EXPECT_FALSE(targets_[3]->Current());
  // The wave after the refusal never started.
  EXPECT_EQ(Outcome(*r, "t4").state, TargetState::kPending);
  EXPECT_EQ(targets_[4]->Applies(kNewDigest), 0);
  for (auto& t : targets_) {
    EXPECT_LE(t->Applies(kNewDigest), 1) << t->name();
    EXPECT_FALSE(Outcome(*r, t->name()).changed) << t->name();
  }
}

TEST_F(RolloutTest, AnOutputMismatchStopsAndRollsBackTheMismatchingTargetToo) {
  MakeTargets(4);
  targets_[2]->output_ = std::string(64, '9');
  targets_[2]->prompt_digests_[1] = std::string(64, '9');
  auto r = Push(Plan(), Options(2));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  const auto& bad = Outcome(*r, "t2");
  EXPECT_EQ(bad.state, TargetState::kRolledBack);
  EXPECT_EQ(bad.comparison, "exact (cpu): mismatch");
  EXPECT_NE(bad.error.find("prompts differing: 2"), std::string::npos) << bad.error;
  EXPECT_EQ(bad.output_digest, "");  // the target confirmed no digest of the local report
  // t1 ran in the same wave and passed; it is rolled back as well. t3 was never touched.
  EXPECT_EQ(Outcome(*r, "t0").state, TargetState::kRolledBack);
  EXPECT_EQ(Outcome(*r, "t1").state, TargetState::kRolledBack);
  EXPECT_EQ(Outcome(*r, "t3").state, TargetState::kPending);
  for (auto& t : targets_) EXPECT_FALSE(t->Current()) << t->name();
}

TEST_F(RolloutTest, AFailedCanaryTouchesNothingElse) {
  MakeTargets(3);
  targets_[0]->require_report_ = true;
  auto plan = Plan();
  plan.deployment.signed_report_json.clear();
  auto r = Push(plan, Options(3));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(Outcome(*r, "t0").state, TargetState::kRefused);
  EXPECT_EQ(Outcome(*r, "t1").state, TargetState::kPending);
  EXPECT_EQ(targets_[1]->Applies(kNewDigest), 0);
  EXPECT_EQ(targets_[2]->Applies(kNewDigest), 0);
}

TEST_F(RolloutTest, AnUnreachableTargetStopsThePushBeforeAnythingChanges) {
  MakeTargets(3);
  targets_[2]->SetDown(true);
  auto r = Push(Plan(), Options());
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_NE(r->stopped_because.find("nothing was changed"), std::string::npos);
  for (auto& t : targets_) EXPECT_EQ(t->Applies(kNewDigest), 0);
}

TEST_F(RolloutTest, ALostApplyReplyIsReadBackAndRolledBack) {
  MakeTargets(3);
  targets_[1]->Seed(kOldDigest);
  targets_[1]->lose_reply_ = true;  // the apply takes effect, the reply is lost
  auto r = Push(Plan(), Options(1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_EQ(Outcome(*r, "t1").state, TargetState::kRolledBack) << Outcome(*r, "t1").error;
  EXPECT_EQ(targets_[1]->Current()->spec.spec_digest, kOldDigest);
  EXPECT_EQ(targets_[0]->Current(), std::nullopt);
  EXPECT_EQ(targets_[1]->Applies(kNewDigest), 1);
}

TEST_F(RolloutTest, ATargetLostMidApplyIsReportedAndRollbackCompletesItLater) {
  MakeTargets(3);
  targets_[1]->Seed(kOldDigest);
  targets_[1]->lose_reply_ = true;
  targets_[1]->go_down_after_lost_reply_ = true;
  auto plan = Plan();
  auto r = Push(plan, Options(1));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  const auto& lost = Outcome(*r, "t1");
  EXPECT_EQ(lost.state, TargetState::kFailed);
  EXPECT_TRUE(lost.changed);
  EXPECT_NE(lost.error.find("sextant rollback chat"), std::string::npos) << lost.error;
  EXPECT_EQ(Outcome(*r, "t0").state, TargetState::kRolledBack);
  EXPECT_EQ(Outcome(*r, "t2").state, TargetState::kPending);
  // The journal knows what t1 was before and that its apply outcome is unknown.
  ASSERT_TRUE(journal_.count("t1"));
  EXPECT_TRUE(journal_["t1"].apply_unknown);
  ASSERT_TRUE(journal_["t1"].previous);
  EXPECT_EQ(journal_["t1"].previous->spec.spec_digest, kOldDigest);

  // The target comes back (its durable state has the new spec); rollback completes the job.
  targets_[1]->lose_reply_ = false;
  targets_[1]->SetDown(false);
  RollbackPlan rb;
  rb.deployment = "chat";
  rb.spec_digest = kNewDigest;
  rb.records = Records();
  for (auto& t : targets_) rb.targets.push_back(t);
  rb.report_for = plan.report_for;
  auto back = Rollback(rb, Options(2));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->ok) << back->stopped_because;
  EXPECT_EQ(Outcome(*back, "t1").state, TargetState::kRolledBack);
  EXPECT_EQ(targets_[1]->Current()->spec.spec_digest, kOldDigest);
  EXPECT_EQ(Outcome(*back, "t0").state, TargetState::kUnchanged);
  // Running it again changes nothing.
  auto again = Rollback(rb, Options(2));
  ASSERT_TRUE(again.ok());
  for (const auto& o : again->targets) EXPECT_EQ(o.state, TargetState::kUnchanged) << o.target;
  EXPECT_EQ(targets_[1]->Applies(kNewDigest), 1);
  EXPECT_EQ(targets_[1]->Applies(kOldDigest), 1);
}

TEST_F(RolloutTest, RollbackOfASuccessfulPushRestoresPreviousGenerations) {
  MakeTargets(3);
  targets_[0]->Seed(kOldDigest);
  auto plan = Plan();
  ASSERT_TRUE(Push(plan, Options(3))->ok);
  // Someone else changes t2 after the push: rollback must leave it alone.
  const std::string other = "sha256:" + std::string(64, 'f');
  ASSERT_TRUE(targets_[2]->Apply(Payload(other), 0, false).ok());
  RollbackPlan rb;
  rb.deployment = "chat";
  rb.spec_digest = kNewDigest;
  rb.records = Records();
  for (auto& t : targets_) rb.targets.push_back(t);
  rb.report_for = plan.report_for;
  auto back = Rollback(rb, Options(1));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->ok);
  EXPECT_EQ(Outcome(*back, "t0").state, TargetState::kRolledBack);
  EXPECT_EQ(targets_[0]->Current()->spec.spec_digest, kOldDigest);
  EXPECT_EQ(Outcome(*back, "t1").state, TargetState::kRolledBack);
  EXPECT_FALSE(targets_[1]->Current());
  EXPECT_EQ(Outcome(*back, "t2").state, TargetState::kFailed);
  EXPECT_NE(Outcome(*back, "t2").error.find("changed since the push"), std::string::npos);
  EXPECT_EQ(targets_[2]->Current()->spec.spec_digest, other);
}

TEST_F(RolloutTest, ConcurrentChangeBetweenReadAndApplyIsRefusedNotOverwritten) {
  MakeTargets(1);
  targets_[0]->Seed(kOldDigest);
  auto plan = Plan();
  // A channel that lets someone else apply between the push's read and its apply.
  class Racing : public TargetChannel {
   public:
    explicit Racing(std::shared_ptr<MemoryTarget> t) : t_(std::move(t)) {}
    std::string name() const override { return t_->name(); }
    Result<std::optional<RemoteDeployment>> Get(const std::string& d) override {
      auto r = t_->Get(d);
      (void)t_->Apply(Payload("sha256:" + std::string(64, 'f')), 0, false);
      return r;
    }
    Result<ApplyReply> Apply(const DeploymentPayload& p, int64_t g, bool a) override {
      return t_->Apply(p, g, a);
    }
    Result<RemoteValidation> Validate(const std::string& d, int64_t g,
                                      const std::vector<ExpectedOutput>& e) override {
      return t_->Validate(d, g, e);
    }
    Status Delete(const std::string& d, int64_t g) override { return t_->Delete(d, g); }
    std::shared_ptr<MemoryTarget> t_;
  };
  plan.targets = {std::make_shared<Racing>(targets_[0])};
  auto r = Push(plan, Options());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->targets[0].state, TargetState::kRefused);
  EXPECT_EQ(targets_[0]->Current()->spec.spec_digest, "sha256:" + std::string(64, 'f'));
}

TEST_F(RolloutTest, PlanErrorsAreRefusedBeforeAnyCall) {
  MakeTargets(2);
  auto plan = Plan();
  auto opts = Options();
  opts.canary = "nope";
  EXPECT_EQ(Push(plan, opts).status().code(), StatusCode::kInvalidArgument);
  opts.canary.clear();
  opts.max_unavailable = 0;
  EXPECT_EQ(Push(plan, opts).status().code(), StatusCode::kInvalidArgument);
  opts.max_unavailable = 1;
  plan.targets.push_back(targets_[0]);
  EXPECT_EQ(Push(plan, opts).status().code(), StatusCode::kInvalidArgument);
  plan = Plan();
  plan.expected.clear();
  EXPECT_EQ(Push(plan, opts).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(MemoryTarget::order_.empty());
}

TEST(CompareOutputsTest, SameBackendIsExactAndOtherBackendsUsePromptAgreement) {
  ExpectedOutput cpu{"cpu", kGoodOutput, {std::string(64, 'd'), std::string(64, 'e')}, 1};
  std::vector<std::string> own = cpu.prompt_digests;
  RemoteValidation v = MemoryTarget::AnswerAsAgent("cpu", own, {cpu}, 1);
  std::string cmp;
  EXPECT_TRUE(CompareOutputs(v, {cpu}, 1.0, &cmp).ok());
  EXPECT_EQ(cmp, "exact (cpu): match");

  // A CUDA target, no CUDA report: prompt agreement with the CPU report.
  own[1] = std::string(64, '7');
  v = MemoryTarget::AnswerAsAgent("cuda", own, {cpu}, 1);
  Status s = CompareOutputs(v, {cpu}, 1.0, &cmp);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(cmp, "prompt-agreement>=1.00 (cpu report vs cuda target): 1/2 agree, below the bound");
  EXPECT_TRUE(CompareOutputs(v, {cpu}, 0.5, &cmp).ok());
  EXPECT_EQ(cmp, "prompt-agreement>=0.50 (cpu report vs cuda target): 1/2 agree");

  // With a CUDA report in the plan, a CUDA target compares with it, and exactly.
  ExpectedOutput cuda{"cuda", std::string(64, '7'), own, 2};
  v = MemoryTarget::AnswerAsAgent("cuda", own, {cpu, cuda}, 1);
  EXPECT_EQ(v.compared_with_backend, "cuda");
  EXPECT_TRUE(CompareOutputs(v, {cpu, cuda}, 1.0, &cmp).ok());
  EXPECT_EQ(cmp, "exact (cuda): match");
  std::vector<std::string> drifted = own;
  drifted[0] = std::string(64, '8');
  v = MemoryTarget::AnswerAsAgent("cuda", drifted, {cpu, cuda}, 1);
  EXPECT_FALSE(CompareOutputs(v, {cpu, cuda}, 0.0, &cmp).ok());
  EXPECT_EQ(cmp, "exact (cuda): mismatch");

  // Fewer prompt answers than prompts never passes.
  own.resize(1);
  v = MemoryTarget::AnswerAsAgent("hip", own, {cpu}, 1);
  EXPECT_FALSE(CompareOutputs(v, {cpu}, 0.5, &cmp).ok());
}

TEST(RolloutJsonTest, CarriesEveryFieldScriptsRead) {
  PushResult r;
  r.ok = false;
  r.deployment = "chat";
  r.spec_digest = kNewDigest;
  r.local_output_digest = kGoodOutput;
  r.stopped_because = "t1 refused";
  TargetOutcome o;
  o.target = "t1";
  o.state = TargetState::kRolledBack;
  o.generation = 3;
  o.previous_generation = 1;
  o.output_digest = kGoodOutput;
  o.comparison = "exact (cpu): match";
  r.targets.push_back(o);
  auto j = ToJson(r);
  EXPECT_EQ(j["deployment"], "chat");
  EXPECT_EQ(j["spec_digest"], kNewDigest);
  EXPECT_EQ(j["local_output_digest"], kGoodOutput);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["stopped_because"], "t1 refused");
  EXPECT_EQ(j["targets"][0]["state"], "rolled-back");
  EXPECT_EQ(j["targets"][0]["generation"], 3);
  EXPECT_EQ(j["targets"][0]["previous_generation"], 1);
  EXPECT_EQ(j["targets"][0]["output_digest"], kGoodOutput);
  EXPECT_EQ(j["targets"][0]["comparison"], "exact (cpu): match");
}

}  // namespace
}  // namespace sextant::console
