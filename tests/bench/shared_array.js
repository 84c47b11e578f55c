// Benchmark script for tests/bench/shared_array.sh: idle VUs that each read
// one record per iteration from a large array, held as
//   MODE=shared  k6/data's SharedArray (one copy per process),
//   MODE=copy    a plain array parsed in every VU (what SharedArray avoids),
//   MODE=none    no array at all (the baseline).
import { SharedArray } from 'k6/data';
import { sleep } from 'k6';

const mode = __ENV.MODE || 'shared';
let records = [{ id: 0 }];
if (mode === 'shared') {
  records = new SharedArray('records', function () { return JSON.parse(open(__ENV.DATA)); });
} else if (mode === 'copy') {
  records = JSON.parse(open(__ENV.DATA));
}

export default () => {
  const r = records[(__VU * 7919 + __ITER) % records.length];
  if (r === undefined || typeof r.id !== 'number') throw new Error('bad record');
  sleep(1);
};
