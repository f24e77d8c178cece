"""`python -m bot.cli ...`: the same as the `checkin` console script."""

from bot.cli import main

main()
