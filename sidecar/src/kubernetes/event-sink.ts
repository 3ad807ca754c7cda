/**
 * Where `watch --events` posts its Events. In a pod (the sidecar's case:
 * KUBERNETES_SERVICE_HOST set, no KUBECONFIG) with kubernetes/in-cluster.ts,
 * node:https only; anywhere else (KUBECONFIG, ~/.kube/config: a workstation,
 * the tests' fake API server) with @kubernetes/client-node, imported only
 * when the first Event is posted: it costs about 55 MiB of RSS for good.
 */
import { inClusterTarget, InClusterEvents, inPod } from './in-cluster.js';

/** What the poster needs: create one Event. Raises HW_ERR_K8S_*. */
export interface EventSink {
  create(namespace: string, body: Record<string, unknown>, timeoutMs?: number): Promise<void>;
}

/** True when the sink is the light in-cluster one (cheap to open at start-up). */
export function lightEventSink(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.KUBECONFIG && inPod(env);
}

/** Opens the sink; raises HW_ERR_K8S_NO_CONFIG when there is no way to reach the API server. */
export async function openEventSink(env: NodeJS.ProcessEnv = process.env): Promise<EventSink> {
  if (lightEventSink(env)) return new InClusterEvents(inClusterTarget(env));
  const { EventsClient, loadKubeConfig } = await import('./client.js');
  return new EventsClient(loadKubeConfig(env));
}
