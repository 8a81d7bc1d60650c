// Reconciliation of an account's GPU instances with the agents that report from them: GPU
// instances no agent reports from are spend Sextant does not manage; an agent whose instance
// the account does not list is running somewhere the account cannot see (another account, a
// terminated instance, a wrong cloud context).
//
// An agent is only called unlisted when it names this account and its region was listed
// completely: a region whose call failed proves nothing, and an agent that names no account may
// belong to another one, so those are "unchecked" instead.
//
// What an agent reports about its machine is a claim, checked against the account's listing,
// never taken as proof: an agent matches an instance only when it is the only agent claiming
// that instance id and, when it names a region, the account lists the instance in that region.
// Two agents claiming one instance, or a claim in the wrong region, leave the instance
// unmanaged and the agents unchecked, with a note saying why.
//
// Thread-safety: pure function.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "app/console/cloud/cloud_types.h"

namespace sextant::console::cloud {

// Where an agent says it runs (its cloud context).
struct AgentPlacement {
  std::string target;  // the console's name for the agent
  std::string provider;
  std::string account_id;
  std::string region;
  std::string instance_id;  // empty when the agent did not report one
  std::string note;         // why the placement is unchecked, or what was dropped from it
};

// An agent's placement from the facts it reported (cloud.provider, cloud.account,
// cloud.region, cloud.instance_id: connectors/console/fleet_connector.cpp stores them as
// received). An account or instance id without its provider's shape
// (app/common/cloud_identity.h) is dropped and `note` says so.
AgentPlacement PlacementFromFacts(const std::string& target,
                                  const std::map<std::string, std::string>& facts);

struct InstanceMatch {
  CloudInstance instance;
  std::string target;
};

struct Reconciliation {
  std::vector<InstanceMatch> matched;
  std::vector<CloudInstance> unmanaged;   // GPU instances with no agent (running ones only)
  std::vector<AgentPlacement> unlisted;   // agents whose instance the account does not list
  std::vector<AgentPlacement> unchecked;  // agents in a region that was not listed,
                                          // without an instance id or without an account id
};

// `instances`: the account's GPU instances from the regions in `regions_listed`.
// Agents of another provider or account id are left out entirely.
Reconciliation Reconcile(const std::string& provider, const std::string& account_id,
                         const std::vector<CloudInstance>& instances,
                         const std::vector<std::string>& regions_listed,
                         const std::vector<AgentPlacement>& agents);

}  // namespace sextant::console::cloud
