// The controller's script in the merge benchmark (distributed.sh): the
// simulated agents never run it; it only sets the test's length.
export const options = {
  scenarios: { s: { executor: 'constant-vus', vus: 1, duration: __ENV.DURATION || '20s' } },
};
export default function () {}
