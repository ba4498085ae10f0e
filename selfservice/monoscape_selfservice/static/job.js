// The job page: append the job's log as it grows and move the progress bar, until the job ends.
(function () {
  "use strict";
  const page = document.getElementById("job");
  if (!page) { return; }
  const log = document.getElementById("log");
  const state = document.getElementById("state");
  const bar = document.getElementById("progress");
  const counts = document.getElementById("counts");
  let offset = 0;
  async function poll() {
    const response = await fetch(`/api/jobs/${page.dataset.job}/log?offset=${offset}`, { credentials: "same-origin" });
    if (!response.ok) { state.textContent = `error ${response.status}`; return; }
    const chunk = await response.json();
    if (chunk.text) { log.textContent += chunk.text; log.scrollTop = log.scrollHeight; }
    offset = chunk.offset;
    state.textContent = chunk.state;
    state.className = `state ${chunk.state}`;
    bar.max = Math.max(chunk.tasks_total, chunk.tasks_done, 1);
    bar.value = chunk.tasks_done;
    counts.textContent = `${chunk.tasks_done} of ${chunk.tasks_total || "?"} tasks`;
    if ((chunk.state === "succeeded" || chunk.state === "failed") && !chunk.text) { return; }
    setTimeout(poll, chunk.text ? 200 : 1000);
  }
  poll();
}());
