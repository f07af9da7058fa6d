# The guest smoke test: which kernel runs, and which processes.
echo "guest uname -r: $(uname -r)"
ps
