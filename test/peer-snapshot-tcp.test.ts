// Peer snapshots over TCP on loopback: the shared end-to-end scenarios
// (test/helpers/peer-scenarios.ts), which the RDMA VM also runs over rxe.
import { definePeerScenarios } from './helpers/peer-scenarios';

definePeerScenarios('tcp', '127.0.0.1');
