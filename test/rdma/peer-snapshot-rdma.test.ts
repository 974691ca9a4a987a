// Peer snapshots over RDMA (soft-RoCE in the VM of scripts/rxe-vm): the same
// end-to-end scenarios as test/peer-snapshot-tcp.test.ts, with the receiver
// listening on RDMA and the servers shipping and loading over it. Images are
// kept small: rxe moves ~0.6 Gb/s and the VM runs several times slower.
import { definePeerScenarios } from '../helpers/peer-scenarios';
import { describeRdma, rdmaTestEnv } from '../helpers/rdma-env';

describeRdma('peer snapshots over RDMA', function () {
  definePeerScenarios('rdma', rdmaTestEnv().host);
});
