# Production images must come from the team registry.
#
# gitswarm evaluates every policies/*.rego file against each rendered stack before it
# deploys anything: `deny` messages block the deploy (when `policies.rego` is enforce,
# the default), `warn` messages are shown and recorded. `input` is the rendered stack
# (input.services, input.compose) plus app, env, stack, revision and commit; see
# `gitswarm policy check --env production`.
#
# The registry is a parameter, so the policy needs no edit when the registry moves:
# gitswarm.yml, environments.production.policies.rego.params.team_registry, read here as
# data.gitswarm.params.team_registry. Without it, the example's local registry is used.
package gitswarm.team_registry

import rego.v1

default team_registry := "127.0.0.1:5000"

team_registry := data.gitswarm.params.team_registry

deny contains {"msg": msg, "service": name} if {
	input.env == "production"
	some name, service in input.services
	image := object.get(service, "image", "")
	not startswith(image, concat("", [team_registry, "/"]))
	msg := sprintf("service %s: image '%s' is not from the team registry %s", [name, image, team_registry])
}
