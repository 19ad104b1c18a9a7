// Kubernetes drops or rejects misspelt fields only at apply time, and no
// Kubernetes schema is available offline. So every field the chart renders,
// in the objects it renders, is checked against the field names of the API
// types (k8s.io/api core/v1, apps/v1 and networking/v1, monitoring.coreos.com/v1), and a
// typo such as "publishNotReadyAddress" fails here.
package deploy_test

import (
	"strings"
	"testing"
)

func fieldSet(names string) map[string]bool {
	set := map[string]bool{}
	for _, name := range strings.Fields(names) {
		set[name] = true
	}
	return set
}

var (
	objectMetaFields  = fieldSet("name namespace labels annotations")
	deploymentFields  = fieldSet("replicas selector template strategy minReadySeconds revisionHistoryLimit paused progressDeadlineSeconds")
	statefulSetFields = fieldSet("replicas selector template volumeClaimTemplates serviceName podManagementPolicy updateStrategy " +
		"revisionHistoryLimit minReadySeconds persistentVolumeClaimRetentionPolicy ordinals")
	podSpecFields = fieldSet("volumes initContainers containers ephemeralContainers restartPolicy terminationGracePeriodSeconds " +
		"activeDeadlineSeconds dnsPolicy nodeSelector serviceAccountName automountServiceAccountToken nodeName hostNetwork " +
		"hostPID hostIPC shareProcessNamespace securityContext imagePullSecrets hostname subdomain affinity schedulerName " +
		"tolerations hostAliases priorityClassName priority dnsConfig readinessGates runtimeClassName enableServiceLinks " +
		"preemptionPolicy overhead topologySpreadConstraints setHostnameAsFQDN os hostUsers schedulingGates resourceClaims")
	containerFields = fieldSet("name image command args workingDir ports envFrom env resources resizePolicy restartPolicy " +
		"volumeMounts volumeDevices livenessProbe readinessProbe startupProbe lifecycle terminationMessagePath " +
		"terminationMessagePolicy imagePullPolicy securityContext stdin stdinOnce tty")
	probeFields = fieldSet("exec httpGet tcpSocket grpc initialDelaySeconds timeoutSeconds periodSeconds successThreshold " +
		"failureThreshold terminationGracePeriodSeconds")
	serviceSpecFields = fieldSet("ports selector clusterIP clusterIPs type externalIPs sessionAffinity loadBalancerIP " +
		"loadBalancerSourceRanges externalName externalTrafficPolicy healthCheckNodePort publishNotReadyAddresses " +
		"sessionAffinityConfig ipFamilies ipFamilyPolicy allocateLoadBalancerNodePorts loadBalancerClass " +
		"internalTrafficPolicy trafficDistribution")
	servicePortFields   = fieldSet("name protocol appProtocol port targetPort nodePort")
	networkPolicySpec   = fieldSet("podSelector ingress egress policyTypes")
	networkPolicyRule   = fieldSet("from ports")
	networkPolicyPort   = fieldSet("port endPort protocol")
	networkPolicyPeer   = fieldSet("podSelector namespaceSelector ipBlock")
	volumeFields        = fieldSet("name persistentVolumeClaim hostPath emptyDir secret configMap projected")
	secretVolumeFields  = fieldSet("secretName items defaultMode optional")
	serviceMonitorSpec  = fieldSet("jobLabel targetLabels podTargetLabels endpoints selector namespaceSelector sampleLimit attachMetadata")
	monitorEndpointSpec = fieldSet("port targetPort path scheme params interval scrapeTimeout tlsConfig honorLabels honorTimestamps " +
		"relabelings metricRelabelings followRedirects enableHttp2 filterRunning")
)

func checkFields(t *testing.T, where string, v interface{}, allowed map[string]bool) {
	t.Helper()
	m, _ := v.(object)
	for key := range m {
		if !allowed[key] {
			t.Errorf("%s.%s is not a Kubernetes field", where, key)
		}
	}
}

func checkPodTemplate(t *testing.T, where string, pod interface{}) {
	t.Helper()
	checkFields(t, where+".metadata", get(pod, "metadata"), objectMetaFields)
	checkFields(t, where+".spec", get(pod, "spec"), podSpecFields)
	volumes, _ := get(pod, "spec", "volumes").([]interface{})
	for _, v := range volumes {
		checkFields(t, where+".volumes[]", v, volumeFields)
		checkFields(t, where+".volumes[].secret", get(v, "secret"), secretVolumeFields)
	}
	containers, _ := get(pod, "spec", "containers").([]interface{})
	for _, c := range containers {
		checkFields(t, where+".containers[]", c, containerFields)
		for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
			checkFields(t, where+".containers[]."+probe, get(c, probe), probeFields)
		}
	}
}

func TestKubernetesFieldNames(t *testing.T) {
	for _, kind := range []string{"StatefulSet", "LeaderWorkerSet"} {
		objects := render(t, "--set", "metrics.serviceMonitor.enabled=true,metrics.dashboard.enabled=true",
			"--set", "workers.kind="+kind, "--set", "workers.nccl.socketIfname=eth0")
		for _, o := range objects {
			name := o["kind"].(string)
			checkFields(t, name+".metadata", o["metadata"], objectMetaFields)
			switch name {
			case "Deployment":
				checkFields(t, "Deployment.spec", o["spec"], deploymentFields)
				checkPodTemplate(t, "Deployment.spec.template", get(o, "spec", "template"))
			case "StatefulSet":
				checkFields(t, "StatefulSet.spec", o["spec"], statefulSetFields)
				checkPodTemplate(t, "StatefulSet.spec.template", get(o, "spec", "template"))
			case "LeaderWorkerSet":
				checkPodTemplate(t, "LeaderWorkerSet.workerTemplate", get(o, "spec", "leaderWorkerTemplate", "workerTemplate"))
			case "Service":
				checkFields(t, "Service.spec", o["spec"], serviceSpecFields)
				for _, port := range get(o, "spec", "ports").([]interface{}) {
					checkFields(t, "Service.spec.ports[]", port, servicePortFields)
				}
			case "ServiceMonitor":
				checkFields(t, "ServiceMonitor.spec", o["spec"], serviceMonitorSpec)
				for _, endpoint := range get(o, "spec", "endpoints").([]interface{}) {
					checkFields(t, "ServiceMonitor.spec.endpoints[]", endpoint, monitorEndpointSpec)
				}
			case "NetworkPolicy":
				checkFields(t, "NetworkPolicy.spec", o["spec"], networkPolicySpec)
				for _, rule := range get(o, "spec", "ingress").([]interface{}) {
					checkFields(t, "NetworkPolicy.spec.ingress[]", rule, networkPolicyRule)
					ports, _ := get(rule, "ports").([]interface{})
					for _, port := range ports {
						checkFields(t, "NetworkPolicy.spec.ingress[].ports[]", port, networkPolicyPort)
					}
					peers, _ := get(rule, "from").([]interface{})
					for _, peer := range peers {
						checkFields(t, "NetworkPolicy.spec.ingress[].from[]", peer, networkPolicyPeer)
					}
				}
			case "ConfigMap":
				checkFields(t, "ConfigMap", o, fieldSet("apiVersion kind metadata data binaryData immutable"))
			default:
				t.Errorf("unexpected kind %s: add its fields to this test", name)
			}
		}
	}
}
